"""The Kubernetes objects one Calrissian job needs, as plain manifests (pure functions).

For each job the backend creates, in this order (the reference, zoo-calrissian-runner,
creates the same set, less what :mod:`blocks.calrissian_access` adds to contain tools):

    Namespace           oapip-<workflow id>-<job id>, at most 63 characters, DNS-safe,
                        labelled for Pod Security admission (``baseline`` enforced)
    RoleBinding         the engine's own rights in the namespace (with ``engine_role``)
    NetworkPolicy       no ingress; egress to DNS and anywhere but cloud metadata
    ServiceAccounts     calrissian (Calrissian's pod), calrissian-tool (tools: no token)
    Role(Binding)       pods create/get/list/watch/delete, pods/log get, for calrissian only
    PersistentVolumeClaim  ReadWriteMany work volume: inputs, tmp, outputs, logs, report
    ConfigMap           the packed CWL, the job order, the node selector of the tool pods
    ConfigMap           small local input files (binaryData), copied onto the volume
    Job (batch/v1)      one pod running `calrissian` with the job's RAM and core budget,
                        non-root with seccomp ``RuntimeDefault`` and a read-only root

No Secret ever goes into a job namespace and no container there gets one: the engine's
credentials (S3, Workspace, Toil WES, Prefect) stay with the engine.

Every function here returns a ``dict`` that validates against the Kubernetes 1.32 schema
in strict mode (tests/blocks/test_calrissian_manifests.py); nothing here talks to a
cluster. Units: memory in MiB, storage in MiB, CPU in whole cores.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from blocks.calrissian_access import (
    CALRISSIAN_ACCOUNT,
    CONTAINER_SECURITY,
    TOOL_ACCOUNT,
    engine_binding,
    namespace_labels,
    network_policy,
    pod_rights,
    pod_security_context,
    service_accounts,
)

__all__ = [
    "INPUTS_DIR",
    "RESULTS_DIR",
    "RESULTS_MARK",
    "WORK_DIR",
    "CalrissianJobSpec",
    "JobResources",
    "calrissian_args",
    "collector_pod_manifest",
    "job_manifests",
    "job_resources",
    "namespace_name",
    "ship_local_inputs",
]

WORK_DIR = "/calrissian"
"""Mount path of the job's ReadWriteMany volume in the Calrissian pod and tool pods."""
RESULTS_DIR = f"{WORK_DIR}/results"
INPUTS_DIR = f"{WORK_DIR}/inputs"
_CONFIG_DIR = "/etc/oapip"
_INPUTS_CONFIG_DIR = "/etc/oapip-inputs"
_MANAGED_BY = {"app.kubernetes.io/managed-by": "oapip", "app.kubernetes.io/component": "job"}
# A ConfigMap holds at most 1 MiB; leave room for keys and metadata.
MAX_SHIPPED_INPUT_BYTES = 900 * 1024
# copy-inputs and collect: a shell copying files (or tar | base64), no more.
_SMALL = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
RESULTS_MARK = "----- oapip results (base64 tar.gz) -----"
"""Line of the ``collect`` pod's log between the CWL output object and the results archive."""


@dataclass(frozen=True)
class JobResources:
    """What a job may use: Calrissian's RAM (MiB) and core budget, the volume size (MiB)."""

    max_ram_mib: int
    max_cores: int
    volume_mib: int


@dataclass(frozen=True)
class CalrissianJobSpec:
    """Site and job settings the manifests are made from."""

    namespace: str
    job_id: str
    process_id: str
    image: str
    resources: JobResources
    storage_class: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    image_pull_secrets: tuple[str, ...] = ()
    image_pull_policy: str = "IfNotPresent"
    labels: Mapping[str, str] = field(default_factory=dict)
    active_deadline_s: int | None = None
    extra_args: tuple[str, ...] = ()
    run_as_user: int = 1001
    engine_role: str | None = None
    engine_account: str | None = None
    pod_role: str | None = None
    blocked_cidrs: tuple[str, ...] = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")


# --- names and sizes ---------------------------------------------------------------------


def _dns_label(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def namespace_name(workflow_id: str, job_id: str, prefix: str = "oapip") -> str:
    """A DNS-1123 label (≤ 63 characters) naming the job's namespace.

    The job id is kept whole (it makes the name unique); the workflow id is shortened to
    what fits, so two jobs never share a namespace however long the process id is.
    """
    job = _dns_label(job_id) or hashlib.sha256(job_id.encode()).hexdigest()[:16]
    head = _dns_label(f"{prefix}-{workflow_id}")
    room = 63 - len(job) - 1
    if room < 1:
        return job[:63].strip("-")
    return f"{head[:room].strip('-')}-{job}"[:63].strip("-")


def _number(value: Any) -> float | None:
    # Expressions (`$(inputs.x)`) cannot be evaluated before the run: the site default applies.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _resource_requirements(workflow: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every ResourceRequirement (requirements or hints) in a packed document."""

    def walk(node: Any) -> Iterator[Mapping[str, Any]]:
        if isinstance(node, Mapping):
            for key in ("requirements", "hints"):
                section = node.get(key)
                items = section.items() if isinstance(section, Mapping) else None
                if items is not None:
                    for cls, req in items:
                        if cls == "ResourceRequirement" and isinstance(req, Mapping):
                            yield req
                elif isinstance(section, list):
                    for req in section:
                        if isinstance(req, Mapping) and req.get("class") == "ResourceRequirement":
                            yield req
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    yield from walk(workflow)


def job_resources(
    workflow: Mapping[str, Any],
    *,
    default_ram_mib: int = 1024,
    default_cores: int = 2,
    default_volume_mib: int = 10 * 1024,
) -> JobResources:
    """Calrissian's budget and the volume size from the CWL's ResourceRequirements.

    RAM and cores: the largest ``ramMax``/``coresMax`` (else ``…Min``) any step asks for,
    never below the site defaults (Calrissian refuses a step larger than its budget).
    Volume: the sum over steps of ``tmpdirMax + outdirMax`` (else ``…Min``), never below
    the default, since every step's outputs stay on the volume until the job ends.
    """
    ram, cores, disk = float(default_ram_mib), float(default_cores), 0.0
    for req in _resource_requirements(workflow):
        step_ram = _number(req.get("ramMax")) or _number(req.get("ramMin"))
        step_cores = _number(req.get("coresMax")) or _number(req.get("coresMin"))
        ram = max(ram, step_ram or 0)
        cores = max(cores, step_cores or 0)
        for kind in ("tmpdir", "outdir"):
            disk += _number(req.get(f"{kind}Max")) or _number(req.get(f"{kind}Min")) or 0
    return JobResources(
        max_ram_mib=int(-(-ram // 1)),
        max_cores=int(-(-cores // 1)),
        volume_mib=int(max(default_volume_mib, -(-disk // 1))),
    )


# --- local inputs ------------------------------------------------------------------------


def _local_path(location: str) -> Path | None:
    parsed = urlparse(location)
    return Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else None


def ship_local_inputs(job_order: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Rewrite local File inputs to paths on the job's volume; return them as files.

    Returns the job order as Calrissian sees it and ``{key: content}`` of the files to
    put in the inputs ConfigMap (``key`` is also the file's name under ``INPUTS_DIR``).
    Remote locations (http, s3) are left for Calrissian's cwltool to fetch. Raises
    ``ValueError`` if the local files exceed what a ConfigMap holds, or a Directory is local.
    """
    files: dict[str, bytes] = {}

    def visit(value: Any) -> Any:
        if isinstance(value, list):
            return [visit(v) for v in value]
        if not isinstance(value, dict) or value.get("class") not in ("File", "Directory"):
            return value
        location = str(value.get("location") or value.get("path") or "")
        path = _local_path(location)
        if path is None:
            return value
        if value["class"] == "Directory":
            raise ValueError(f"local Directory input {location} cannot be shipped to Calrissian")
        key = f"f{len(files)}-{_dns_label(path.name) or 'input'}"[:253]
        files[key] = path.read_bytes()
        shipped = {k: v for k, v in value.items() if k not in ("path", "location")}
        shipped["location"] = f"file://{INPUTS_DIR}/{key}"
        shipped.pop("secondaryFiles", None)
        return shipped

    order = {name: visit(value) for name, value in job_order.items()}
    size = sum(len(content) for content in files.values())
    if size > MAX_SHIPPED_INPUT_BYTES:
        raise ValueError(
            f"local inputs take {size} bytes; at most {MAX_SHIPPED_INPUT_BYTES} fit in a "
            "ConfigMap: give large inputs as http(s) or s3 URLs"
        )
    return order, files


# --- manifests ---------------------------------------------------------------------------


def _metadata(spec: CalrissianJobSpec, name: str, namespaced: bool = True) -> dict[str, Any]:
    labels = {
        **_MANAGED_BY,
        "oapip.eoepca.org/job-id": _dns_label(spec.job_id)[:63].strip("-"),
        "oapip.eoepca.org/process-id": _dns_label(spec.process_id)[:63].strip("-"),
        **spec.labels,
    }
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespaced:
        meta["namespace"] = spec.namespace
    return meta


def _namespace(spec: CalrissianJobSpec) -> dict[str, Any]:
    meta = _metadata(spec, spec.namespace, False)
    meta["labels"].update(namespace_labels())
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _access(spec: CalrissianJobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the engine's binding, created before anything else; then the network policy,
    accounts and Calrissian's pod rights)."""

    def meta(name: str) -> dict[str, Any]:
        return _metadata(spec, name)

    first = []
    if spec.engine_role and spec.engine_account:
        first.append(engine_binding(meta, spec.engine_role, spec.engine_account))
    rest = [
        network_policy(meta, spec.blocked_cidrs),
        *service_accounts(meta, spec.image_pull_secrets),
        *pod_rights(meta, spec.namespace, spec.pod_role),
    ]
    return first, rest


def _volume_claim(spec: CalrissianJobSpec) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": f"{spec.resources.volume_mib}Mi"}},
    }
    if spec.storage_class:
        claim["storageClassName"] = spec.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(spec, "calrissian-wdir"),
        "spec": claim,
    }


def _config_map(
    spec: CalrissianJobSpec, name: str, data: Mapping[str, str], binary: Mapping[str, bytes]
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, name),
        "data": dict(data),
    }
    if binary:
        manifest["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return manifest


def calrissian_args(spec: CalrissianJobSpec, entrypoint: str) -> list[str]:
    """Calrissian's command line: budget, where reports and logs go, the CWL and its order."""
    args = [
        "--max-ram",
        f"{spec.resources.max_ram_mib}Mi",
        "--max-cores",
        str(spec.resources.max_cores),
        "--tmpdir-prefix",
        f"{WORK_DIR}/tmp/",
        "--tmp-outdir-prefix",
        f"{WORK_DIR}/tmp-out/",
        "--outdir",
        f"{RESULTS_DIR}/",
        "--stdout",
        f"{WORK_DIR}/output.json",
        "--stderr",
        f"{WORK_DIR}/stderr.log",
        "--usage-report",
        f"{WORK_DIR}/usage-report.json",
        "--tool-logs-basepath",
        f"{WORK_DIR}/logs",
        "--pod-serviceaccount",
        TOOL_ACCOUNT,
    ]
    if spec.node_selector:
        args += ["--pod-nodeselectors", f"{_CONFIG_DIR}/node-selectors.yaml"]
    args += [
        *spec.extra_args,
        f"{_CONFIG_DIR}/workflow.cwl#{entrypoint}",
        f"{_CONFIG_DIR}/job.json",
    ]
    return args


def _job(spec: CalrissianJobSpec, entrypoint: str, has_inputs: bool) -> dict[str, Any]:
    mounts = [
        {"name": "wdir", "mountPath": WORK_DIR},
        {"name": "workflow", "mountPath": _CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "wdir", "persistentVolumeClaim": {"claimName": "calrissian-wdir"}},
        {"name": "workflow", "configMap": {"name": "calrissian-workflow"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    init_containers = []
    if has_inputs:
        volumes.append({"name": "inputs", "configMap": {"name": "calrissian-inputs"}})
        # Calrissian only accepts paths on the pod's ReadWriteMany volumes: copy the
        # shipped inputs there first (cp -L: ConfigMap files are symbolic links).
        init_containers.append(
            {
                "name": "copy-inputs",
                "image": spec.image,
                "imagePullPolicy": spec.image_pull_policy,
                "command": [
                    "sh",
                    "-c",
                    f"mkdir -p {INPUTS_DIR} && cp -L {_INPUTS_CONFIG_DIR}/* {INPUTS_DIR}/",
                ],
                "volumeMounts": [
                    {"name": "wdir", "mountPath": WORK_DIR},
                    {"name": "inputs", "mountPath": _INPUTS_CONFIG_DIR, "readOnly": True},
                ],
                "resources": _SMALL,
                "securityContext": CONTAINER_SECURITY,
            }
        )
    container = {
        "name": "calrissian",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["calrissian"],
        "args": calrissian_args(spec, entrypoint),
        "env": [
            {
                "name": "CALRISSIAN_POD_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            {"name": "HOME", "value": f"{WORK_DIR}/home"},
        ],
        "volumeMounts": mounts,
        "workingDir": WORK_DIR,
        # Calrissian itself is a Python process; the tools' budget is in its arguments.
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": CONTAINER_SECURITY,
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": CALRISSIAN_ACCOUNT,
        "automountServiceAccountToken": True,  # Calrissian creates the tool pods
        "restartPolicy": "Never",
        "securityContext": pod_security_context(spec.run_as_user),
        "containers": [container],
        "volumes": volumes,
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 3600,
        "template": {"metadata": {"labels": _metadata(spec, "x")["labels"]}, "spec": pod_spec},
    }
    if spec.active_deadline_s:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_s
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(spec, "calrissian"),
        "spec": job_spec,
    }


def collector_pod_manifest(spec: CalrissianJobSpec) -> dict[str, Any]:
    """A pod that prints the output object, then a base64 tar.gz, and ends.

    The archive holds the results folder, Calrissian's usage report and the tools' logs.
    """
    script = (
        f"cd {WORK_DIR} && cat output.json && echo && echo '{RESULTS_MARK}' && "
        "tar -czf - results $(ls -d usage-report.json logs 2>/dev/null) | base64"
    )
    pod_spec: dict[str, Any] = {
        "serviceAccountName": TOOL_ACCOUNT,
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "securityContext": pod_security_context(spec.run_as_user),
        "containers": [
            {
                "name": "collect",
                "image": spec.image,
                "imagePullPolicy": spec.image_pull_policy,
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "wdir", "mountPath": WORK_DIR, "readOnly": True}],
                "resources": _SMALL,
                "securityContext": CONTAINER_SECURITY,
            }
        ],
        "volumes": [{"name": "wdir", "persistentVolumeClaim": {"claimName": "calrissian-wdir"}}],
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(spec, "collect"),
        "spec": pod_spec,
    }


def job_manifests(
    spec: CalrissianJobSpec,
    workflow: Mapping[str, Any],
    entrypoint: str,
    job_order: Mapping[str, Any],
    input_files: Mapping[str, bytes] | None = None,
) -> list[dict[str, Any]]:
    """Every object of one job, in the order they must be created.

    ``job_order`` must already refer to shipped inputs (:func:`ship_local_inputs`);
    ``input_files`` are their contents.
    """
    data = {
        "workflow.cwl": json.dumps(workflow, indent=1),
        "job.json": json.dumps(job_order, indent=1),
    }
    if spec.node_selector:
        # JSON is YAML: no YAML dumper needed for a flat string map.
        data["node-selectors.yaml"] = json.dumps(dict(spec.node_selector), indent=2) + "\n"
    first, access = _access(spec)
    manifests = [
        _namespace(spec),
        *first,
        *access,
        _volume_claim(spec),
        _config_map(spec, "calrissian-workflow", data, {}),
    ]
    if input_files:
        manifests.append(_config_map(spec, "calrissian-inputs", {}, input_files))
    manifests.append(_job(spec, entrypoint, bool(input_files)))
    return manifests
