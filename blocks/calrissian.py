"""The Calrissian backend: each job's CWL steps run as Kubernetes pods, in a namespace per job.

``submit`` creates the job's objects (:mod:`blocks.calrissian_manifests` makes them) with
the official Kubernetes client; the run then watches the namespace's pods until the
Calrissian Job ends, fails early when a pod cannot pull its image or cannot be scheduled,
forwards Calrissian's log (which includes the tools' logs) to the flow-run logger, and
copies the results off the job's volume for stage-out. The namespace is deleted at the
end (kept after a failure if ``keep_namespace_on_failure``); ``cancel`` deletes the Job
and the namespace.

Results leave the volume through a short-lived ``collect`` pod that writes the CWL output
object and a gzipped tar of the results to its log, read with the client's pod-log call
(the kubelet's log rotation, 10 MiB by default, bounds what this path can carry).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from blocks.calrissian_manifests import (
    RESULTS_DIR,
    RESULTS_MARK,
    CalrissianJobSpec,
    collector_pod_manifest,
    job_manifests,
    job_resources,
    namespace_name,
    ship_local_inputs,
)
from core.exceptions import BackendError

__all__ = ["CalrissianBackend"]

_STEP_DONE = re.compile(r"\[step [^\]]+\] completed")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # cwltool colours its log levels
_ERROR = re.compile(r"\b(ERROR|permanentFail|Exception)\b")
# Waiting reasons that never resolve by themselves: the job fails with the reason.
_STUCK_REASONS = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"}
)


class CalrissianBackend(ExecutionBackend):
    """Run application packages with Calrissian on a Kubernetes cluster, one namespace per job.

    Example:
        ```python
        from blocks import CalrissianBackend
        backend = CalrissianBackend.load("cluster")
        run = backend.submit(job)
        outcome = run.wait_for_completion()
        ```
    """

    _block_type_name = "Calrissian backend"
    _block_type_slug = "calrissian-backend"
    _description = (
        "Runs CWL application packages on Kubernetes with Calrissian: a namespace, a "
        "ReadWriteMany volume and a Calrissian Job per OGC job."
    )

    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig file of the cluster. Unset: the in-cluster service account.",
        examples=["/etc/oapip/kubeconfig"],
    )
    kube_context: str | None = Field(
        default=None,
        description="Context in the kubeconfig file. Unset: its current context.",
        examples=["eoepca"],
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that replaces the kubeconfig's credentials, if set.",
    )
    calrissian_image: str = Field(
        default="terradue/calrissian:0.18.1",
        description="Image of the Calrissian Job (Calrissian's own image, not the engine's).",
        examples=["terradue/calrissian:0.18.1"],
    )
    namespace_prefix: str = Field(
        default="oapip",
        description="Start of every job namespace's name: `<prefix>-<process>-<job id>`.",
        examples=["oapip"],
    )
    storage_class: str | None = Field(
        default=None,
        description="StorageClass of the job volume; it must offer ReadWriteMany. "
        "Unset: the cluster's default class.",
        examples=["standard", "longhorn"],
    )
    default_max_ram_mib: int = Field(
        default=1024,
        ge=1024,
        description="Calrissian's RAM budget when the CWL asks for less, MiB.",
    )
    default_max_cores: int = Field(
        default=2, ge=1, description="Calrissian's core budget when the CWL asks for less."
    )
    default_volume_mib: int = Field(
        default=10 * 1024,
        ge=1,
        description="Size of the job volume when the CWL's tmpdirMax+outdirMax is smaller, MiB.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node selector of the Calrissian pod and of every tool pod "
        "(NODE_SELECTOR_KEY/NODE_SELECTOR_VALUE).",
        examples=[{"k8s.provider/node-pool": "processing"}],
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        description="Names of image-pull secrets given to the job's service account and pods; "
        "the secrets must exist in each job namespace (e.g. copied by a policy engine).",
        examples=[["registry-credentials"]],
    )
    keep_namespace_on_failure: bool = Field(
        default=False,
        description="Keep a failed job's namespace (pods, volume, logs) for inspection.",
    )
    unschedulable_timeout_s: float = Field(
        default=300.0,
        ge=0,
        description="How long a pod may stay unschedulable before the job fails, seconds.",
    )
    job_timeout_s: int | None = Field(
        default=None,
        description="Deadline of the Calrissian Job (activeDeadlineSeconds), seconds. Unset: none.",
        examples=[86400],
    )
    calrissian_args: list[str] = Field(
        default_factory=list,
        description="More arguments for Calrissian, before the workflow (e.g. `--debug`).",
        examples=[["--debug", "--no-match-user"]],
    )
    watch_timeout_s: int = Field(
        default=60,
        ge=1,
        description="Length of one watch request before it is renewed, seconds.",
    )

    def api_client(self) -> Any:
        """A ready ``kubernetes.client.ApiClient`` for the configured cluster."""
        from kubernetes import client, config

        try:
            if self.kubeconfig is not None:
                api = config.new_client_from_config(
                    config_file=str(self.kubeconfig), context=self.kube_context
                )
            else:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                api = client.ApiClient(configuration)
        except (config.ConfigException, OSError) as exc:
            raise BackendError(f"Unable to configure the Kubernetes client: {exc}") from exc
        if self.api_token is not None:
            api.configuration.api_key = {"authorization": self.api_token.get_secret_value()}
            api.configuration.api_key_prefix = {"authorization": "Bearer"}
        return api

    def job_spec(self, job: CwlJob) -> CalrissianJobSpec:
        """The settings of ``job``'s manifests: names, budget, site settings."""
        return CalrissianJobSpec(
            namespace=namespace_name(job.process_id, job.job_id, self.namespace_prefix),
            job_id=job.job_id,
            process_id=job.process_id,
            image=self.calrissian_image,
            resources=job_resources(
                job.workflow,
                default_ram_mib=self.default_max_ram_mib,
                default_cores=self.default_max_cores,
                default_volume_mib=self.default_volume_mib,
            ),
            storage_class=self.storage_class,
            node_selector=dict(self.node_selector),
            image_pull_secrets=tuple(self.image_pull_secrets),
            active_deadline_s=self.job_timeout_s,
            extra_args=tuple(self.calrissian_args),
        )

    def submit(self, job: CwlJob) -> BackendRun:
        """Create the job's namespace and objects; return the run that tracks them."""
        spec = self.job_spec(job)
        try:
            order, files = ship_local_inputs(job.job_order)
        except (ValueError, OSError) as exc:
            raise BackendError(f"Unable to hand the inputs to Calrissian: {exc}") from exc
        manifests = job_manifests(spec, job.workflow, job.entrypoint, order, files)
        run = _CalrissianRun(self, spec, job, self.api_client())
        run.start_reaper()
        run.create(manifests)
        return run


class _CalrissianRun(BackendRun):
    """One job's namespace on the cluster, watched until its Calrissian Job ends."""

    def __init__(
        self, backend: CalrissianBackend, spec: CalrissianJobSpec, job: CwlJob, api: Any
    ) -> None:
        from kubernetes import client

        self.run_id = spec.namespace
        self._backend = backend
        self._spec = spec
        self._job = job
        self._api = api
        self._core = client.CoreV1Api(api)
        self._batch = client.BatchV1Api(api)
        self._rbac = client.RbacAuthorizationV1Api(api)
        self._outputs: dict[str, Any] = {}
        self._unschedulable_since: dict[str, float] = {}

    # --- creation and deletion -----------------------------------------------------------

    def _creator(self, kind: str) -> Callable[..., Any]:
        ns = self._spec.namespace
        creators: dict[str, Callable[..., Any]] = {
            "Namespace": self._core.create_namespace,
            "ServiceAccount": lambda body: self._core.create_namespaced_service_account(ns, body),
            "Role": lambda body: self._rbac.create_namespaced_role(ns, body),
            "RoleBinding": lambda body: self._rbac.create_namespaced_role_binding(ns, body),
            "PersistentVolumeClaim": lambda body: (
                self._core.create_namespaced_persistent_volume_claim(ns, body)
            ),
            "ConfigMap": lambda body: self._core.create_namespaced_config_map(ns, body),
            "Job": lambda body: self._batch.create_namespaced_job(ns, body),
            "Pod": lambda body: self._core.create_namespaced_pod(ns, body),
        }
        return creators[kind]

    def create(self, manifests: list[dict[str, Any]]) -> None:
        """Create ``manifests`` in order; on failure remove what was created."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        for manifest in manifests:
            try:
                self._creator(manifest["kind"])(manifest)
            except (ApiException, HTTPError) as exc:
                self._delete_namespace()
                self._release_reaper()
                raise BackendError(
                    f"Unable to create {manifest['kind']} {manifest['metadata']['name']!r} "
                    f"for job {self._spec.job_id}: {_reason(exc)}"
                ) from exc
        self._job.logger.info(
            "Calrissian job created in namespace %s (%d MiB RAM, %d cores, %d MiB volume)",
            self._spec.namespace,
            self._spec.resources.max_ram_mib,
            self._spec.resources.max_cores,
            self._spec.resources.volume_mib,
        )

    def _delete_namespace(self) -> None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._core.delete_namespace(self._spec.namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                self._job.logger.warning(
                    "could not delete namespace %s: %s", self._spec.namespace, _reason(exc)
                )
        except HTTPError as exc:
            self._job.logger.warning("could not delete namespace %s: %s", self._spec.namespace, exc)

    # --- tracking ------------------------------------------------------------------------

    def wait_for_completion(self) -> RunOutcome:
        """Watch the namespace's pods until the Calrissian Job ends; collect its results."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            outcome = self._watch()
            tail = self._forward_log()
            if outcome.success:
                self._outputs = self._collect()
            elif tail:
                outcome = RunOutcome(False, f"{outcome.message}; Calrissian's last lines: {tail}")
        except BackendError as exc:
            outcome = RunOutcome(False, exc.detail)
        except (ApiException, HTTPError) as exc:
            outcome = RunOutcome(False, f"Kubernetes API error: {_reason(exc)}")
        except BaseException:
            self.cancel()
            raise
        if outcome.success or not self._backend.keep_namespace_on_failure:
            self._delete_namespace()
        else:
            self._job.logger.warning("namespace %s kept for inspection", self._spec.namespace)
        self._release_reaper()
        return outcome

    def _job_outcome(self) -> RunOutcome | None:
        """The Job's end from its conditions, or ``None`` while it runs."""
        status = self._batch.read_namespaced_job_status("calrissian", self._spec.namespace).status
        for condition in (status.conditions if status else None) or []:
            if condition.status != "True":
                continue
            if condition.type == "Complete":
                return RunOutcome(True)
            if condition.type == "Failed":
                return RunOutcome(
                    False, f"Calrissian job failed: {condition.reason}: {condition.message or ''}"
                )
        if status and status.succeeded:
            return RunOutcome(True)
        if status and status.failed:
            return RunOutcome(False, "the Calrissian job failed")
        return None

    def _watch(self) -> RunOutcome:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        resource_version: str | None = None
        while True:
            outcome = self._job_outcome()
            if outcome is not None:
                return outcome
            stream = watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": self._backend.watch_timeout_s}
            if resource_version:
                kwargs["resource_version"] = resource_version
            try:
                events = list(self._pod_events(stream, kwargs))
            except ApiException as exc:
                if exc.status != 410:
                    raise
                # The resource version expired (410 Gone): start again from a fresh list.
                resource_version = None
                continue
            for pod in events:
                resource_version = pod.metadata.resource_version or resource_version
            # The Job's pod ended or the watch timed out. Look at every pod again (a pod
            # can stay unschedulable without any event), then ask the Job itself.
            for pod in self._core.list_namespaced_pod(self._spec.namespace).items:
                self._check_pod(pod)

    def _pod_events(self, stream: Any, kwargs: dict[str, Any]) -> Any:
        """Pods of the namespace as they change, checked on the way; ends with the Job's pod."""
        for event in stream.stream(self._core.list_namespaced_pod, self._spec.namespace, **kwargs):
            pod = event["object"]
            self._check_pod(pod)
            yield pod
            phase = pod.status.phase if pod.status else None
            if _is_calrissian_pod(pod) and phase in ("Succeeded", "Failed"):
                stream.stop()

    def _check_pod(self, pod: Any) -> None:
        """Fail the job if ``pod`` cannot pull its image or cannot be scheduled."""
        name = pod.metadata.name
        status = pod.status
        if status is None:
            return
        for container in [
            *(status.init_container_statuses or []),
            *(status.container_statuses or []),
        ]:
            waiting = container.state.waiting if container.state else None
            if waiting is not None and waiting.reason in _STUCK_REASONS:
                raise BackendError(
                    f"pod {name}: {waiting.reason} for image {container.image}: "
                    f"{waiting.message or ''}".rstrip(": ")
                )
        for condition in status.conditions or []:
            if (
                condition.type == "PodScheduled"
                and condition.status == "False"
                and (condition.reason == "Unschedulable")
            ):
                since = self._unschedulable_since.setdefault(name, time.monotonic())
                if time.monotonic() - since >= self._backend.unschedulable_timeout_s:
                    raise BackendError(f"pod {name} is unschedulable: {condition.message or ''}")
                return
        self._unschedulable_since.pop(name, None)

    def _calrissian_pod(self) -> str | None:
        pods = self._core.list_namespaced_pod(
            self._spec.namespace, label_selector="job-name=calrissian"
        ).items
        return pods[-1].metadata.name if pods else None

    def _forward_log(self) -> str:
        """Calrissian's log (its own lines and the tools') into the job's logger.

        Returns its last lines that name an error (or its last lines), for a failure message.
        """
        from kubernetes.client.exceptions import ApiException

        name = self._calrissian_pod()
        if name is None:
            return ""
        try:
            text = self._core.read_namespaced_pod_log(
                name, self._spec.namespace, container="calrissian"
            )
        except ApiException as exc:
            self._job.logger.warning("no log of pod %s: %s", name, _reason(exc))
            return ""
        lines = [_ANSI.sub("", line) for line in text.splitlines()]
        for line in lines:
            self._job.logger.info(line)
            if self._job.on_step is not None and _STEP_DONE.search(line):
                self._job.on_step()
        errors = [line for line in lines if _ERROR.search(line)]
        return " | ".join((errors or [line for line in lines if line.strip()])[-3:])[-1500:]

    # --- results -------------------------------------------------------------------------

    def _collect(self) -> dict[str, Any]:
        """Read the output object and result files off the volume with a ``collect`` pod."""
        self._creator("Pod")(collector_pod_manifest(self._spec))
        deadline = time.monotonic() + 600
        while True:
            pod = self._core.read_namespaced_pod_status("collect", self._spec.namespace)
            self._check_pod(pod)
            phase = pod.status.phase if pod.status else None
            if phase in ("Succeeded", "Failed"):
                break
            if time.monotonic() > deadline:
                raise BackendError("the collect pod did not finish within 600 s")
            time.sleep(0.5)
        log = self._core.read_namespaced_pod_log("collect", self._spec.namespace)
        if phase != "Succeeded":
            raise BackendError(f"could not read the results off the job volume: {log[-2000:]}")
        outputs = unpack_results(log, self._job.outdir)
        self._report_usage(self._job.outdir / "usage-report.json")
        return outputs

    def _report_usage(self, path: Path) -> None:
        """Calrissian's usage report (RAM, cores, time per tool pod) into the job's log."""
        if not path.exists():
            return
        try:
            report = json.loads(path.read_text())
        except ValueError:
            return
        self._job.logger.info(
            "Calrissian usage: %s s, peak %s MiB RAM, %s cores, %d tool pods",
            report.get("elapsed_seconds", "?"),
            report.get("max_parallel_ram_megabytes", "?"),
            report.get("max_parallel_cpus", "?"),
            len(report.get("children", [])),
        )

    def fetch_result(self) -> dict[str, Any]:
        return self._outputs

    def cancel(self) -> None:
        """Delete the Calrissian Job (its pods with it) and the job's namespace."""
        delete_job_and_namespace(self._api, self._spec.namespace)
        self._release_reaper()

    # --- the reaper: cleanup when this process is killed ----------------------------------

    def start_reaper(self) -> None:
        """Start a process, in a session of its own, that deletes the job's namespace if
        this process dies before the run ends.

        A dismissed job's process is SIGKILLed by the fast worker (no ``finally`` runs),
        and the namespace would keep running in the cluster. The reaper holds the read
        end of a pipe whose write end only this process has: end of file without the
        word ``done`` means this process is gone.
        """
        settings = self._backend.model_dump(mode="json")
        if self._backend.api_token is not None:
            settings["api_token"] = self._backend.api_token.get_secret_value()
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "blocks.calrissian"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
        assert self._reaper.stdin is not None
        self._reaper.stdin.write(
            json.dumps({"backend": settings, "namespace": self._spec.namespace}) + "\n"
        )
        self._reaper.stdin.flush()

    def _release_reaper(self) -> None:
        """The run ended here: tell the reaper it has nothing to do."""
        reaper = getattr(self, "_reaper", None)
        if reaper is None or reaper.stdin is None or reaper.stdin.closed:
            return
        with contextlib.suppress(OSError):
            reaper.stdin.write("done\n")
            reaper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            reaper.wait(10)


def delete_job_and_namespace(api: Any, namespace: str) -> None:
    """Delete the Calrissian Job (foreground: its pods first) and the namespace, if there."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    # Already gone, or the namespace deletion takes it.
    with contextlib.suppress(ApiException, HTTPError):
        client.BatchV1Api(api).delete_namespaced_job(
            "calrissian", namespace, propagation_policy="Foreground"
        )
    with contextlib.suppress(ApiException, HTTPError):
        client.CoreV1Api(api).delete_namespace(namespace, propagation_policy="Background")


def _reap() -> None:
    """The reaper's main: read the settings line, wait for end of input, clean up unless done."""
    request = json.loads(sys.stdin.readline())
    if sys.stdin.read().strip() == "done":
        return
    backend = CalrissianBackend(**request["backend"])
    delete_job_and_namespace(backend.api_client(), request["namespace"])


def _is_calrissian_pod(pod: Any) -> bool:
    labels = pod.metadata.labels or {}
    return labels.get("job-name") == "calrissian"


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if body:
        try:
            return f"HTTP {status}: {json.loads(body).get('message', body)}"
        except (ValueError, AttributeError):
            return f"HTTP {status}: {body}"
    return str(exc)


def unpack_results(log: str, outdir: Path) -> dict[str, Any]:
    """The CWL output object from a ``collect`` pod's log, its files unpacked in ``outdir``.

    File and Directory locations under the job volume's results folder are rewritten to
    ``file://`` paths in ``outdir``.
    """
    head, mark, payload = log.partition(RESULTS_MARK)
    if not mark:
        raise BackendError("the collect pod's log has no results")
    try:
        outputs = json.loads(head.strip() or "{}")
        archive = base64.b64decode("".join(payload.split()))
    except (ValueError, binascii.Error) as exc:
        raise BackendError(f"unreadable results from the job volume: {exc}") from exc
    outdir.mkdir(parents=True, exist_ok=True)
    if archive:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(outdir, filter="data")
    local = outdir.resolve()

    def relocate(value: Any) -> Any:
        if isinstance(value, list):
            return [relocate(v) for v in value]
        if not isinstance(value, dict):
            return value
        moved = {k: relocate(v) for k, v in value.items()}
        if value.get("class") in ("File", "Directory"):
            for key in ("location", "path"):
                text = str(value.get(key, ""))
                for prefix in (f"file://{RESULTS_DIR}/", f"{RESULTS_DIR}/"):
                    if text.startswith(prefix):
                        path = local / "results" / text.removeprefix(prefix)
                        moved[key] = path.as_uri() if key == "location" else str(path)
        return moved

    return relocate(outputs)


if __name__ == "__main__":
    _reap()
