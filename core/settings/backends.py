"""Settings of the execution backends: cwltool (containers), Toil WES, Calrissian,
and flow runs as Kubernetes Jobs."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from core.settings.base import Group, config

__all__ = [
    "CalrissianSettings",
    "ExecutionSettings",
    "KubernetesPoolSettings",
    "ToilSettings",
]


class ExecutionSettings(Group):
    """Where and how CWL runs, and what one job may ask for."""

    model_config = config("OAPIP_")

    engine: str = Field(
        validation_alias=AliasChoices("OAPIP_EXECUTION_ENGINE", "engine"),
        default="cwltool",
        description="Backend that runs CWL when a process does not name one: `cwltool` "
        "on the worker, `toil` on an HPC site through Toil WES (`OAPIP_TOIL_WES_URL`), "
        "`calrissian` on Kubernetes, or a backend of `OAPIP_BACKEND_MODULES`. Checked "
        "against the backends that exist when the stack is set up and when a job runs.",
    )
    backend_modules: list[str] = Field(
        default_factory=list,
        description="Python modules that add execution backends, as a JSON list: each is "
        "imported (by the gateway, the worker and each job) and registers its "
        "`ExecutionBackend` classes with `blocks.registry.register`; processes then name "
        "a backend by its `engine` in `executionEngine`.",
        examples=[["site_backends.htcondor"]],
    )
    allow_no_container: bool = Field(
        default=True,
        description="Run tools whose DockerRequirement is only a hint without a container "
        ". A DockerRequirement under `requirements` always needs "
        "a container engine.",
    )
    container_engine: Literal["docker", "podman", "none"] = Field(
        default="none",
        description="Container engine cwltool uses for DockerRequirement "
        ". `none` runs tools on the host.",
    )
    container_pull: bool = Field(
        default=True,
        description="Pull an image a tool names when the engine does not hold it. "
        "`false`: a missing image fails the job at once (machines without a registry).",
    )
    container_network: str | None = Field(
        default=None,
        description="Network mode of containers whose tool has network access (`--net`), "
        "e.g. `host` to reach servers on the host's loopback. Unset: the engine's default.",
        examples=["host"],
    )
    sandbox: Literal["off", "containers"] = Field(
        default="off",
        description="How tools of the cwltool backend are confined. `off` (single-user): "
        "on the host, as an unprivileged user (`OAPIP_SANDBOX_UID`) with CPU-time, process, "
        "file-size and address-space limits and a scrubbed environment. `containers`: every "
        "CommandLineTool in a container of `OAPIP_CONTAINER_ENGINE` as that user, no "
        "capabilities, no new privileges, inputs read-only, pids/memory/CPU limits, network "
        "`none` unless the tool declares NetworkAccess (then `OAPIP_SANDBOX_NETWORK`). "
        "Multi-tenant mode (OIDC on) needs `containers`.",
    )
    default_image: str | None = Field(
        default=None,
        description="Image of tools without a DockerRequirement when `OAPIP_SANDBOX="
        "containers`. Unset: such packages are refused at deploy.",
        examples=["debian:bookworm-slim"],
    )
    sandbox_uid: int = Field(
        default=65534,
        ge=1,
        description="Numeric user (and group) sandboxed tools run as, on the host or in "
        "containers.",
    )
    sandbox_network: str = Field(
        default="bridge",
        description="Network (`--net`) of sandboxed containers whose tool declares "
        "NetworkAccess: one from which the host's loopback (Prefect API, gateway) cannot be "
        "reached. `none` denies tools network access altogether.",
        examples=["bridge", "oapip-tools"],
    )
    sandbox_max_pids: int = Field(
        default=256,
        ge=8,
        description="Most processes one sandboxed tool may run at once (`--pids-limit`; "
        "with `off`, the process limit of the sandbox user).",
    )
    sandbox_max_cpu_s: int = Field(
        default=3600,
        ge=1,
        description="CPU time one tool may use with `OAPIP_SANDBOX=off`, seconds.",
    )
    sandbox_max_file_mib: int = Field(
        default=4096,
        ge=1,
        description="Largest file one sandboxed tool may write, MiB (with `containers` also "
        "the size of its writable /tmp).",
    )
    max_job_ram_mib: int = Field(
        default=1024,
        ge=1,
        description="Most RAM one job may ask for, MiB: a package whose ResourceRequirement "
        "`ramMin` is larger is refused at deploy (400); a sandboxed container's memory "
        "limit never exceeds it.",
    )
    max_job_cores: float = Field(
        default=2,
        gt=0,
        description="Most cores one job may ask for: a package whose ResourceRequirement "
        "`coresMin` is larger is refused at deploy (400); a sandboxed container's CPU "
        "limit never exceeds it.",
    )


class ToilSettings(Group):
    """The Toil WES backend (an HPC site)."""

    model_config = config("OAPIP_TOIL_")

    wes_url: str | None = Field(
        default=None,
        description="Toil WES endpoint of the HPC site, ending with `/ga4gh/wes/v1/`. "
        "Needed when any process runs on `toil`.",
        examples=["https://hpc.example.org/ga4gh/wes/v1/"],
    )
    wes_user: str | None = Field(
        default=None,
        description="User name for basic authentication at the Toil WES endpoint.",
    )
    wes_password: SecretStr | None = Field(
        default=None,
        description="Password for basic authentication at the Toil WES endpoint.",
    )


class CalrissianSettings(Group):
    """The Calrissian backend (Kubernetes)."""

    model_config = config("OAPIP_CALRISSIAN_")

    kubeconfig: Path | None = Field(
        validation_alias=AliasChoices("OAPIP_KUBECONFIG", "kubeconfig"),
        default=None,
        description="Kubeconfig of the cluster Calrissian jobs run on. Unset: the in-cluster "
        "service account.",
    )
    image: str = Field(
        default="terradue/calrissian:0.18.1",
        description="Image of each job's Calrissian Job.",
    )
    storage_class: str | None = Field(
        default=None,
        description="ReadWriteMany StorageClass of job volumes. Unset: the cluster default.",
    )
    keep_namespace_on_failure: bool = Field(
        default=False,
        description="Keep a failed job's namespace for inspection.",
    )
    node_selector_key: str | None = Field(
        validation_alias=AliasChoices(
            "NODE_SELECTOR_KEY", "OAPIP_NODE_SELECTOR_KEY", "node_selector_key"
        ),
        default=None,
        description="Node label key the Calrissian pods must run on (with the value).",
    )
    node_selector_value: str | None = Field(
        validation_alias=AliasChoices(
            "NODE_SELECTOR_VALUE", "OAPIP_NODE_SELECTOR_VALUE", "node_selector_value"
        ),
        default=None,
        description="Value of that node label.",
    )
    image_pull_secrets: str = Field(
        validation_alias=AliasChoices("OAPIP_IMAGE_PULL_SECRETS", "image_pull_secrets"),
        default="",
        description="Comma-separated image-pull secret names for Calrissian jobs.",
    )
    max_ram_mib: int = Field(
        default=1024,
        ge=1024,
        description="Calrissian's RAM budget per job when the CWL asks for less, MiB.",
    )
    max_cores: int = Field(
        default=2,
        ge=1,
        description="Calrissian's core budget per job when the CWL asks for less.",
    )
    namespace_prefix: str = Field(
        default="oapip",
        description="Start of every job namespace's name, `<prefix>-<process>-<job id>` (the "
        "Helm chart's admission policy lets the engine create and delete only those).",
    )
    run_as_user: int = Field(
        default=1001,
        ge=1,
        description="Numeric user (and group) the Calrissian pod runs as: the user of "
        "Calrissian's image. Calrissian runs its tool pods as the same user.",
    )
    engine_role: str | None = Field(
        default=None,
        description="ClusterRole the engine binds, in each new job namespace and before "
        "anything else, to its own ServiceAccount (`OAPIP_CALRISSIAN_ENGINE_ACCOUNT`): its "
        "rights there. Unset: the engine's own rights cover job namespaces (a kubeconfig).",
        examples=["oapip-job-engine"],
    )
    engine_account: str | None = Field(
        default=None,
        description="The engine's ServiceAccount as `<namespace>:<name>`, bound to "
        "`OAPIP_CALRISSIAN_ENGINE_ROLE` in each job namespace.",
        examples=["eoepca:oapip-worker"],
    )
    pod_role: str | None = Field(
        default=None,
        description="ClusterRole bound, in each job namespace, to Calrissian's ServiceAccount "
        "(pods and their logs there). Unset: a Role with those rights is created in the "
        "namespace, which needs the engine to hold them itself.",
        examples=["oapip-job-calrissian"],
    )
    blocked_cidrs: list[str] = Field(
        default_factory=lambda: ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"],
        description="Addresses job pods may not reach (JSON list of CIDRs, in each job "
        "namespace's NetworkPolicy): cloud metadata by default; add the cluster's pod, "
        "service and node ranges to keep tools inside the internet.",
        examples=['["169.254.0.0/16", "10.0.0.0/8"]'],
    )

    @field_validator("blocked_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(cidr, strict=False)) for cidr in cidrs]


class KubernetesPoolSettings(Group):
    """Flow runs as Kubernetes Jobs (a `kubernetes` work pool)."""

    model_config = config("OAPIP_JOB_")

    image: str | None = Field(
        default=None,
        description="Image of the flow-run Jobs of a kubernetes work pool (`oapip setup "
        "--worker kubernetes`). Unset: `oapip-prefect:0.1.0`.",
    )
    namespace: str | None = Field(
        default=None,
        description="Namespace of those Jobs. Unset: `oapip`.",
    )
    service_account: str | None = Field(
        default=None,
        description="Service account of those Jobs. Unset: `oapip-job`.",
    )
    config_map: str | None = Field(
        default=None,
        description="ConfigMap whose keys become the environment of every flow-run Job "
        "(`envFrom`): the engine's settings. The Helm chart names its own.",
        examples=["oapip-config"],
    )
    secret: str | None = Field(
        default=None,
        description="Secret the flow-run Jobs take the engine's secret settings from, key by "
        "key (S3 and Workspace credentials, Toil WES password, Prefect API auth string); a "
        "key the Secret lacks is left unset.",
        examples=["oapip-secrets"],
    )
    data_claim: str | None = Field(
        default=None,
        description="PersistentVolumeClaim (ReadWriteMany) shared with the gateway, mounted "
        "in flow-run Jobs at `<OAPIP_HOME>/prefect-results` (results documents) and "
        "`<OAPIP_HOME>/results` (local result store). Unset: none.",
        examples=["oapip-data"],
    )
