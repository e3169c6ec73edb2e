"""Every setting of the engine, read once from the environment.

Names follow what operators of the reference deployment already use (S3_ENDPOINT,
OAPIP_TOIL_WES_URL, ...); engine-specific ones start with ``OAPIP_``. Nothing else in
the code reads ``os.environ`` for configuration: take a ``Settings`` instance instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "settings_table"]


def _default_home() -> Path:
    return Path.home() / ".oapip"


class Settings(BaseSettings):
    """Engine settings; each field documents its environment variable and unit."""

    model_config = SettingsConfigDict(env_prefix="OAPIP_", extra="ignore", populate_by_name=True)

    # --- where things live -------------------------------------------------------------
    home: Path = Field(
        default_factory=_default_home,
        description="Folder for the embedded default: Prefect's SQLite database, local "
        "results, job work directories, logs and PID files.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach the gateway at, used in links and Location "
        "headers. Unset: taken from each request.",
        examples=["https://zoo.example.org"],
    )
    prefect_api_url: str = Field(
        default="http://127.0.0.1:4200/api",
        validation_alias=AliasChoices("PREFECT_API_URL", "OAPIP_PREFECT_API_URL"),
        description="Prefect server API. Unset: the embedded server, "
        "`http://127.0.0.1:<OAPIP_PREFECT_PORT>/api`.",
    )
    prefect_ui_url: str | None = Field(
        default=None,
        description="Prefect UI base URL for links from job status. "
        "Unset: derived from the API URL.",
    )
    prefect_write_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Writes (flow-run creations, state changes) one gateway or worker sends "
        "the Prefect server at once. Prefect on SQLite "
        "serialises writers and degrades badly under concurrent ones (10 concurrent creations "
        "took 6 s, one at a time 0.5 s): keep 1 there; 8 suits PostgreSQL.",
    )
    work_pool: str = Field(
        default="oapip",
        description="Prefect work pool that every process deployment targets.",
    )

    # --- execution ---------------------------------------------------------------------
    execution_engine: Literal["cwltool", "calrissian"] = Field(
        default="cwltool",
        validation_alias=AliasChoices("OAPIP_EXECUTION_ENGINE", "execution_engine"),
        description="Backend that runs CWL when a process does not name one .",
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
    worker_slots: int = Field(
        default=8,
        ge=1,
        description="Jobs one fast worker runs at once.",
    )
    job_memory_limit_mib: int = Field(
        default=4096,
        ge=128,
        description="Address-space cap of one job's engine process, MiB "
        "; tools started by the job inherit it.",
    )

    # --- flow runs as Kubernetes Jobs (a `kubernetes` work pool) -----------------------
    job_image: str | None = Field(
        default=None,
        description="Image of the flow-run Jobs of a kubernetes work pool (`oapip setup "
        "--worker kubernetes`). Unset: `oapip-prefect:0.1.0`.",
    )
    job_namespace: str | None = Field(
        default=None,
        description="Namespace of those Jobs. Unset: `oapip`.",
    )
    job_service_account: str | None = Field(
        default=None,
        description="Service account of those Jobs. Unset: `oapip-job`.",
    )

    # --- Calrissian (Kubernetes) ---------------------------------------------------------
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig of the cluster Calrissian jobs run on. Unset: the in-cluster "
        "service account.",
    )
    calrissian_image: str = Field(
        default="terradue/calrissian:0.18.1",
        description="Image of each job's Calrissian Job.",
    )
    calrissian_storage_class: str | None = Field(
        default=None,
        description="ReadWriteMany StorageClass of job volumes. Unset: the cluster default.",
    )
    calrissian_keep_namespace_on_failure: bool = Field(
        default=False,
        description="Keep a failed job's namespace for inspection.",
    )
    node_selector_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NODE_SELECTOR_KEY", "OAPIP_NODE_SELECTOR_KEY"),
        description="Node label key the Calrissian pods must run on (with the value).",
    )
    node_selector_value: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NODE_SELECTOR_VALUE", "OAPIP_NODE_SELECTOR_VALUE"),
        description="Value of that node label.",
    )
    image_pull_secrets: str = Field(
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

    # --- results -----------------------------------------------------------------------
    storage_url: str | None = Field(
        default=None,
        description="Where results are stored, as a `file:///path` URL. "
        "Unset: `<home>/results` on the local disk.",
        examples=["file:///srv/oapip/results"],
    )
    results_prefix: str = Field(
        default="processing-results",
        description="Key prefix of job results; a job's files go under `<prefix>/<jobID>/`.",
    )
    # --- gateway limits ----------------------------------------------------------------
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024,
        description="Largest request body the gateway accepts, bytes.",
    )
    package_fetch_max_bytes: int = Field(
        default=5 * 1024 * 1024,
        description="Largest application package fetched from an `href`, bytes .",
    )
    package_fetch_timeout_s: float = Field(
        default=20.0,
        description="Time allowed to fetch an application package `href`, seconds .",
    )
    sync_execute_timeout_s: float = Field(
        default=600.0,
        description="How long a synchronous execute request waits for its job, seconds "
        "; past that the client gets the job's status.",
    )

    # --- embedded stack ----------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8000, description="Port of the gateway.")
    prefect_port: int = Field(default=4200, description="Port of the embedded Prefect server.")
    database_url: str | None = Field(
        default=None,
        description="Database of the embedded Prefect server, e.g. "
        "`postgresql+asyncpg://postgres@127.0.0.1:5432/prefect`. Unset: SQLite in home.",
    )

    @model_validator(mode="after")
    def _api_url_follows_port(self) -> Settings:
        # Only the port given: the embedded server's API is there, not on the default port.
        if "prefect_api_url" not in self.model_fields_set:
            self.prefect_api_url = f"http://127.0.0.1:{self.prefect_port}/api"
        return self

    @property
    def results_url(self) -> str:
        """Base URL of the result store (``file://`` or ``s3://``)."""
        return self.storage_url or (self.home / "results").resolve().as_uri()

    def job_dir(self, job_id: str) -> Path:
        """The work directory of job ``job_id`` (inputs, outputs, cwltool's scratch)."""
        return self.home / "jobs" / job_id

    @property
    def ui_url(self) -> str:
        """Prefect UI base URL (no trailing slash)."""
        if self.prefect_ui_url:
            return self.prefect_ui_url.rstrip("/")
        return self.prefect_api_url.rstrip("/").removesuffix("/api")


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


def _env_name(name: str, field: Any) -> str:
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if alias is not None and getattr(alias, "choices", None):
        return str(alias.choices[0])
    return f"OAPIP_{name.upper()}"


def settings_table() -> str:
    """Every setting as a Markdown table (the README's table is generated from this)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "`~/.oapip`" if name == "home" else "(computed)"
        elif field.default is None:
            default = "unset"
        else:
            default = f"`{field.default}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{_env_name(name, field)}` | {default} | {description} |")
    return "\n".join(rows)


def update_readme(path: Path) -> None:
    """Rewrite the settings table between the README's settings-table markers."""
    text = path.read_text()
    start, end = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{settings_table()}\n{end}{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--update"]:
        update_readme(Path(sys.argv[2]))
    else:
        print(settings_table())
