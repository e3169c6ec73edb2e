"""The Helm chart rendered as a cluster would run it: objects, pods, and each container's
resolved environment, the flow-run Job of the kubernetes worker included.

No cluster: Helm's own Go SDK renders the chart (``helm-python-sdk``); a container's
environment is resolved the way the kubelet does it (``envFrom`` first, then ``env``,
secrets read from the rendered Secret or the test's existing one); the flow-run Job is the
work pool's job template that ``oapip setup --worker kubernetes`` makes from the setup
container's settings, rendered by prefect-kubernetes the way its worker does with the worker
container's settings.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import helm_python
import prefect.settings
import yaml
from prefect.client.schemas.objects import FlowRun
from prefect_kubernetes.settings import KubernetesSettings
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

from blocks.backend import CwlJob
from blocks.calrissian import CalrissianBackend
from blocks.calrissian_manifests import job_manifests
from core.settings import Settings
from stack.setup import kubernetes_job_template
from tests.support import settings_from

__all__ = [
    "CHART",
    "NAMESPACE",
    "Container",
    "containers",
    "engine_settings",
    "flow_run_job",
    "job_objects",
    "prefect_settings",
    "render",
    "unknown_settings",
]

CHART = Path(__file__).resolve().parents[2] / "infrastructure" / "helm" / "oapip"
NAMESPACE = "eoepca"


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart makes with ``values`` (release ``oapip`` in ``eoepca``)."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name="oapip", namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


@dataclass
class Container:
    """One container of one pod, with what it runs with."""

    workload: str  # e.g. "Deployment/oapip-worker", "Job/flow-run"
    pod: dict[str, Any]  # the pod spec
    spec: dict[str, Any]  # the container
    env: dict[str, str]  # its environment, resolved
    init: bool

    @property
    def name(self) -> str:
        return f"{self.workload}/{self.spec['name']}"

    def mount_of(self, path: str) -> dict[str, Any] | None:
        """The volume ``path`` lies on in this container, or None (its writable layer)."""
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        best = None
        for mount in self.spec.get("volumeMounts", []):
            root = mount["mountPath"].rstrip("/") + "/"
            if (path.rstrip("/") + "/").startswith(root) and (
                best is None or len(root) > len(best[0])
            ):
                best = (root, volumes[mount["name"]], mount)
        return None if best is None else {**best[1], "readOnly": best[2].get("readOnly", False)}


def _secret_data(objects: list[dict[str, Any]], extra: dict[str, dict[str, str]]) -> dict:
    secrets = {name: dict(data) for name, data in extra.items()}
    for o in objects:
        if o["kind"] == "Secret":
            data = dict(o.get("stringData") or {})
            data.update({k: base64.b64decode(v).decode() for k, v in (o.get("data") or {}).items()})
            secrets[o["metadata"]["name"]] = data
    return secrets


def _resolve(
    pod: dict[str, Any], container: dict[str, Any], objects: list, secrets: dict
) -> dict[str, str]:
    config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref or "configMapKeyRef" in ref:
            key_ref = ref.get("secretKeyRef") or ref["configMapKeyRef"]
            store = secrets if "secretKeyRef" in ref else config_maps
            value = store.get(key_ref["name"], {}).get(key_ref["key"])
            if value is None:
                assert key_ref.get("optional"), f"{container['name']}: {item['name']} missing"
            elif value != "":
                env[item["name"]] = value
        else:
            field = ref["fieldRef"]["fieldPath"]
            env[item["name"]] = {
                "metadata.namespace": NAMESPACE,
                "spec.serviceAccountName": pod.get("serviceAccountName", "default"),
            }[field]
    return env


def _pods(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{o['kind']}/{o['metadata'].get('name', 'flow-run')}", o["spec"]["template"]


def containers(
    objects: list[dict[str, Any]], existing: dict[str, dict[str, str]] | None = None
) -> list[Container]:
    """Every container of every pod in ``objects``, with its resolved environment;
    ``existing`` holds the data of Secrets the chart only names (secrets.existingSecret)."""
    secrets = _secret_data(objects, existing or {})
    found = []
    for workload, template in _pods(objects):
        pod = template["spec"]
        for field in ("initContainers", "containers"):
            for c in pod.get(field, []):
                env = _resolve(pod, c, objects, secrets)
                found.append(Container(workload, pod, c, env, field == "initContainers"))
    return found


def _in_environment(env: dict[str, str], make: Any) -> Any:
    with mock.patch.dict(os.environ, env, clear=True):
        return make()


def engine_settings(env: dict[str, str]) -> Settings:
    """The engine's own settings object, as a process with environment ``env`` reads it."""
    return settings_from(env)


def prefect_settings(env: dict[str, str]) -> prefect.settings.Settings:
    """Prefect's settings, as a process with environment ``env`` reads them."""
    return _in_environment(env, prefect.settings.Settings)


def unknown_settings(names: Iterable[str]) -> list[str]:
    """The ``names`` that no one reads: neither a variable of the engine's settings (a
    field's, or an operator's name the engine aliases) nor one of Prefect's settings."""
    from core.settings.table import _groups, env_name

    known = {"DO_NOT_TRACK"}  # Prefect's (and others') telemetry switch, no setting
    for group in _groups():
        for name, field in group.model_fields.items():
            known.add(env_name(group, name, field))
            choices = getattr(field.validation_alias, "choices", None) or []
            known.update(str(c) for c in choices if str(c).isupper())
    # prefect.settings.PREFECT_* exists for every setting Prefect reads (and no other).
    return [n for n in names if n not in known and not hasattr(prefect.settings, n)]


class _NoServer:
    """Stands in for the Prefect client: the template refers to no blocks or variables."""


def flow_run_job(
    objects: list[dict[str, Any]], existing: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """The Job a flow run becomes under the chart's kubernetes worker.

    The pool's template is what ``oapip setup --worker kubernetes`` makes in the worker's
    setup container; the worker renders it with its own Prefect settings (prefect-kubernetes
    copies them into every Job) and swaps the API auth string for a reference to its Secret,
    as ``KubernetesWorker._create_job`` does.
    """
    worker = {c.spec["name"]: c for c in containers(objects, existing) if "worker" in c.workload}
    template = kubernetes_job_template(engine_settings(worker["setup"].env))
    worker_env = worker["worker"].env
    own = _in_environment(worker_env, prefect.settings.Settings)
    with mock.patch.object(
        KubernetesWorkerJobConfiguration,
        "_base_environment",
        classmethod(lambda cls: own.to_environment_variables(exclude_unset=True)),
    ):
        config = asyncio.run(
            KubernetesWorkerJobConfiguration.from_template_and_values(
                template, {}, client=_NoServer()
            )
        )
        flow_run = FlowRun(id=uuid.uuid4(), name="gentle-otter", flow_id=uuid.uuid4())
        config.prepare_for_flow_run(flow_run)
    k8s = _in_environment(worker_env, KubernetesSettings)
    name, key = k8s.worker.api_auth_string_secret_name, k8s.worker.api_auth_string_secret_key
    if name and key:
        replace = KubernetesWorker(work_pool_name="oapip")._replace_env_variable_with_secret
        asyncio.run(replace("PREFECT_API_AUTH_STRING", config, name, key))
    manifest = config.job_manifest
    manifest["metadata"]["name"] = "flow-run"
    return manifest


def job_objects(objects: list[dict[str, Any]], workdir: Path) -> list[dict[str, Any]]:
    """What the engine creates for one Calrissian job, with the settings the chart gives
    the fast worker (a long process id: the namespace name is cut to 63 characters)."""
    worker = next(c for c in containers(objects) if c.name == "Deployment/oapip-worker/worker")
    backend = CalrissianBackend.from_settings(engine_settings(worker.env))
    job = CwlJob(
        job_id="0b6c5e1a-3f2d-4c1e-9a6b-2f1d0c9e8a7b",
        process_id="a-rather-long-process-identifier-for-water-bodies",
        workflow={"class": "CommandLineTool", "id": "main"},
        entrypoint="#main",
        job_order={},
        workdir=workdir,
    )
    return job_manifests(backend.job_spec(job), job.workflow, "#main", {})
