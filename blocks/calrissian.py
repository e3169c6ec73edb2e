"""The Calrissian backend: each job's CWL steps run as Kubernetes pods, in a namespace per job.

``submit`` creates the job's objects (:mod:`blocks.calrissian_manifests` makes them) with
the official Kubernetes client; the run then watches the namespace's pods until the
Calrissian Job ends, fails early when a pod cannot pull its image or cannot be scheduled,
forwards Calrissian's log (which includes the tools' logs) to the flow-run logger, and
copies the results off the job's volume for stage-out. The namespace is deleted at the
end (kept after a failure if ``keep_namespace_on_failure``); ``cancel`` deletes the Job
and the namespace. The namespace is recorded in the job's work directory while the run
goes on: if the job's process is killed (a dismissed job's group is SIGKILLed), the worker
deletes it through :meth:`CalrissianBackend.stop_run`.

Results leave the volume through a short-lived ``collect`` pod that writes the CWL output
object and a gzipped tar of the results to its log, read with the client's pod-log call
(the kubelet's log rotation, 10 MiB by default, bounds what this path can carry).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from pydantic import Field, SecretStr

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from blocks.calrissian_manifests import (
    CalrissianJobSpec,
    collector_pod_manifest,
    job_manifests,
    job_resources,
    namespace_name,
    ship_local_inputs,
)
from blocks.calrissian_pods import (
    PodChecks,
    api_reason,
    is_calrissian_pod,
    job_outcome,
    refused_by_rbac,
)
from blocks.calrissian_results import forward_log, unpack_results, usage_summary
from core.exceptions import BackendError
from core.retry import Backoff, retry
from core.settings import Settings

__all__ = ["CalrissianBackend"]

# How long a create refused by RBAC (403) is repeated: a new RoleBinding counts ~1 s later.
_RBAC_PROPAGATION = Backoff(first_s=0.2, factor=2.0, max_s=1.0, attempts=None, deadline_s=10.0)


class CalrissianBackend(ExecutionBackend):
    """Run application packages with Calrissian on a Kubernetes cluster, one namespace per job.

    Example:
        ```python
        from blocks.calrissian import CalrissianBackend
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
    engine = "calrissian"

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
    run_as_user: int = Field(
        default=1001, ge=1, description="Numeric user of the Calrissian pod and its tool pods."
    )
    engine_role: str | None = Field(
        default=None,
        description="ClusterRole bound to `engine_account` first in each job namespace.",
        examples=["oapip-job-engine"],
    )
    engine_account: str | None = Field(
        default=None, description="The engine's ServiceAccount, `<namespace>:<name>`."
    )
    pod_role: str | None = Field(
        default=None,
        description="ClusterRole of Calrissian's pod rights. Unset: a Role of the namespace.",
        examples=["oapip-job-calrissian"],
    )
    blocked_cidrs: list[str] = Field(
        default_factory=lambda: ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"],
        description="Addresses no pod of a job namespace may reach (its NetworkPolicy).",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The cluster and budgets of ``OAPIP_KUBECONFIG`` and ``OAPIP_CALRISSIAN_*``."""
        calrissian = settings.calrissian
        selector = (
            {calrissian.node_selector_key: calrissian.node_selector_value or ""}
            if calrissian.node_selector_key
            else {}
        )
        return cls(
            kubeconfig=calrissian.kubeconfig,
            calrissian_image=calrissian.image,
            storage_class=calrissian.storage_class,
            keep_namespace_on_failure=calrissian.keep_namespace_on_failure,
            node_selector=selector,
            image_pull_secrets=[
                s.strip() for s in calrissian.image_pull_secrets.split(",") if s.strip()
            ],
            default_max_ram_mib=calrissian.max_ram_mib,
            default_max_cores=calrissian.max_cores,
            namespace_prefix=calrissian.namespace_prefix,
            run_as_user=calrissian.run_as_user,
            engine_role=calrissian.engine_role,
            engine_account=calrissian.engine_account,
            pod_role=calrissian.pod_role,
            blocked_cidrs=list(calrissian.blocked_cidrs),
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
            run_as_user=self.run_as_user,
            engine_role=self.engine_role,
            engine_account=self.engine_account,
            pod_role=self.pod_role,
            blocked_cidrs=tuple(self.blocked_cidrs),
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
        self.record_run(job, spec.namespace, {"namespace": spec.namespace})
        run.create(manifests)
        return run

    def stop_run(
        self, handle: dict[str, Any], logger: logging.Logger | logging.LoggerAdapter
    ) -> None:
        """Delete the Calrissian Job and the namespace ``handle["namespace"]``."""
        logger.warning("deleting the Calrissian job and namespace %s", handle["namespace"])
        _delete_namespace(self.api_client(), handle["namespace"], logger, job_first=True)


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
        self._networking = client.NetworkingV1Api(api)
        self._outputs: dict[str, Any] = {}
        self._pods = PodChecks(backend.unschedulable_timeout_s)

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
            "NetworkPolicy": lambda body: self._networking.create_namespaced_network_policy(
                ns, body
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
            try:  # the engine's binding, created first, may take a moment to count
                retry(
                    lambda manifest=manifest: self._creator(manifest["kind"])(manifest),
                    backoff=_RBAC_PROPAGATION,
                    retryable=refused_by_rbac,
                )
            except (ApiException, HTTPError) as exc:
                _delete_namespace(self._api, self._spec.namespace, self._job.logger)
                self._forget()
                raise BackendError(
                    f"Unable to create {manifest['kind']} {manifest['metadata']['name']!r} "
                    f"for job {self._spec.job_id}: {api_reason(exc)}"
                ) from exc
        self._job.logger.info(
            "Calrissian job created in namespace %s (%d MiB RAM, %d cores, %d MiB volume)",
            self._spec.namespace,
            self._spec.resources.max_ram_mib,
            self._spec.resources.max_cores,
            self._spec.resources.volume_mib,
        )

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
            outcome = RunOutcome(False, f"Kubernetes API error: {api_reason(exc)}")
        except BaseException:
            self.cancel()
            raise
        if outcome.success or not self._backend.keep_namespace_on_failure:
            _delete_namespace(self._api, self._spec.namespace, self._job.logger)
        else:
            self._job.logger.warning("namespace %s kept for inspection", self._spec.namespace)
        self._forget()
        return outcome

    def _job_outcome(self) -> RunOutcome | None:
        """The Job's end from its conditions, or ``None`` while it runs."""
        return job_outcome(
            self._batch.read_namespaced_job_status("calrissian", self._spec.namespace).status
        )

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
                self._pods.check(pod)

    def _pod_events(self, stream: Any, kwargs: dict[str, Any]) -> Any:
        """Pods of the namespace as they change, checked on the way; ends with the Job's pod."""
        for event in stream.stream(self._core.list_namespaced_pod, self._spec.namespace, **kwargs):
            pod = event["object"]
            self._pods.check(pod)
            yield pod
            phase = pod.status.phase if pod.status else None
            if is_calrissian_pod(pod) and phase in ("Succeeded", "Failed"):
                stream.stop()

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
            self._job.logger.warning("no log of pod %s: %s", name, api_reason(exc))
            return ""
        return forward_log(text, self._job.logger, self._job.on_step)

    # --- results -------------------------------------------------------------------------

    def _collect(self) -> dict[str, Any]:
        """Read the output object and result files off the volume with a ``collect`` pod."""
        self._creator("Pod")(collector_pod_manifest(self._spec))
        deadline = time.monotonic() + 600
        while True:
            pod = self._core.read_namespaced_pod_status("collect", self._spec.namespace)
            self._pods.check(pod)
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
        usage = usage_summary(self._job.outdir / "usage-report.json")
        if usage:
            self._job.logger.info("%s", usage)
        return outputs

    def fetch_result(self) -> dict[str, Any]:
        return self._outputs

    def cancel(self) -> None:
        """Delete the Calrissian Job (its pods with it) and the job's namespace."""
        _delete_namespace(self._api, self._spec.namespace, self._job.logger, job_first=True)
        self._forget()

    def _forget(self) -> None:
        """The run ended here: nobody needs to delete its namespace after the job process."""
        self._backend.forget_run(self._job, self._spec.namespace)


def _delete_namespace(
    api: Any,
    namespace: str,
    logger: logging.Logger | logging.LoggerAdapter,
    *,
    job_first: bool = False,
) -> None:
    """Delete a job's namespace, if it is there; with ``job_first``, its Calrissian Job
    before it (foreground: the Job's pods first), which stops the run at once."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if job_first:
        # Already gone, or the namespace deletion takes it.
        with contextlib.suppress(ApiException, HTTPError):
            client.BatchV1Api(api).delete_namespaced_job(
                "calrissian", namespace, propagation_policy="Foreground"
            )
    try:
        client.CoreV1Api(api).delete_namespace(namespace, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            logger.warning("could not delete namespace %s: %s", namespace, api_reason(exc))
    except HTTPError as exc:
        logger.warning("could not delete namespace %s: %s", namespace, exc)
