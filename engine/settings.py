"""Every setting of the engine, read once from the environment.

Names follow what operators of the reference deployment already use (S3_ENDPOINT,
OAPIP_TOIL_WES_URL, ...); engine-specific ones start with ``OAPIP_``. Nothing else in
the code reads ``os.environ`` for configuration: take a ``Settings`` instance instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


def _default_home() -> Path:
    return Path.home() / ".oapip"


class Settings(BaseSettings):
    """Engine settings; each field documents its environment variable and unit."""

    model_config = SettingsConfigDict(env_prefix="OAPIP_", extra="ignore", populate_by_name=True)

    # --- where things live -------------------------------------------------------------
    home: Path = Field(
        default_factory=_default_home,
        description="Folder for the embedded default: Prefect's SQLite database, local "
        "results, job work directories, logs and PID files (OAPIP_HOME).",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach the gateway at, used in links and Location "
        "headers (OAPIP_PUBLIC_URL). Unset: taken from each request.",
        examples=["https://zoo.example.org"],
    )
    prefect_api_url: str = Field(
        default="http://127.0.0.1:4200/api",
        validation_alias=AliasChoices("PREFECT_API_URL", "OAPIP_PREFECT_API_URL"),
        description="Prefect server API (PREFECT_API_URL).",
    )
    prefect_ui_url: str | None = Field(
        default=None,
        description="Prefect UI base URL for links from job status (OAPIP_PREFECT_UI_URL). "
        "Unset: derived from the API URL.",
    )
    prefect_write_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Writes (flow-run creations, state changes) one gateway or worker sends "
        "the Prefect server at once (OAPIP_PREFECT_WRITE_CONCURRENCY). Prefect on SQLite "
        "serialises writers and degrades badly under concurrent ones (10 concurrent creations "
        "took 6 s, one at a time 0.5 s): keep 1 there; 8 suits PostgreSQL.",
    )
    work_pool: str = Field(
        default="oapip",
        description="Prefect work pool that every process deployment targets (OAPIP_WORK_POOL).",
    )

    # --- execution ---------------------------------------------------------------------
    execution_engine: Literal["cwltool", "toil", "calrissian"] = Field(
        default="cwltool",
        validation_alias=AliasChoices("OAPIP_EXECUTION_ENGINE", "execution_engine"),
        description="Backend that runs CWL when a process does not name one "
        "(OAPIP_EXECUTION_ENGINE).",
    )
    allow_no_container: bool = Field(
        default=True,
        description="Run tools whose DockerRequirement is only a hint without a container "
        "(OAPIP_ALLOW_NO_CONTAINER). A DockerRequirement under `requirements` always needs "
        "a container engine.",
    )
    container_engine: Literal["docker", "podman", "none"] = Field(
        default="none",
        description="Container engine cwltool uses for DockerRequirement "
        "(OAPIP_CONTAINER_ENGINE). `none` runs tools on the host.",
    )
    max_ram_mib: int = Field(
        default=1024, ge=64, description="Largest RAM one job may ask for, MiB (OAPIP_MAX_RAM_MIB)."
    )
    max_cores: int = Field(
        default=2, ge=1, description="Most cores one job may ask for (OAPIP_MAX_CORES)."
    )
    worker_slots: int = Field(
        default=8,
        ge=1,
        description="Jobs one fast worker runs at once (OAPIP_WORKER_SLOTS).",
    )
    job_memory_limit_mib: int = Field(
        default=4096,
        ge=128,
        description="Address-space cap of one job's engine process, MiB "
        "(OAPIP_JOB_MEMORY_LIMIT_MIB); tools started by the job inherit it.",
    )

    # --- results -----------------------------------------------------------------------
    storage_url: str | None = Field(
        default=None,
        description="Where results are stored (OAPIP_STORAGE_URL): `file:///path` or "
        "`s3://bucket`. Unset: `<home>/results` on the local disk.",
        examples=["s3://eoepca", "file:///srv/oapip/results"],
    )
    results_prefix: str = Field(
        default="processing-results",
        description="Key prefix of job results; a job's files go under "
        "`<prefix>/<jobID>/` (OAPIP_RESULTS_PREFIX).",
    )
    s3_endpoint: str | None = Field(
        default=None, validation_alias="S3_ENDPOINT", description="Stage-out S3 endpoint URL."
    )
    s3_access_key: SecretStr | None = Field(
        default=None, validation_alias="S3_ACCESS_KEY", description="Stage-out S3 access key."
    )
    s3_secret_key: SecretStr | None = Field(
        default=None, validation_alias="S3_SECRET_KEY", description="Stage-out S3 secret key."
    )
    s3_region: str = Field(
        default="us-east-1", validation_alias="S3_REGION", description="Stage-out S3 region."
    )

    # --- gateway limits ----------------------------------------------------------------
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024,
        description="Largest request body the gateway accepts, bytes (OAPIP_MAX_REQUEST_BYTES).",
    )
    package_fetch_max_bytes: int = Field(
        default=5 * 1024 * 1024,
        description="Largest application package fetched from an `href`, bytes "
        "(OAPIP_PACKAGE_FETCH_MAX_BYTES).",
    )
    package_fetch_timeout_s: float = Field(
        default=20.0,
        description="Time allowed to fetch an application package `href`, seconds "
        "(OAPIP_PACKAGE_FETCH_TIMEOUT_S).",
    )
    sync_execute_timeout_s: float = Field(
        default=600.0,
        description="How long a synchronous execute request waits for its job, seconds "
        "(OAPIP_SYNC_EXECUTE_TIMEOUT_S); past that the client gets the job's status.",
    )

    # --- embedded stack ----------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8000, description="Port of the gateway (OAPIP_PORT).")
    prefect_port: int = Field(
        default=4200, description="Port of the embedded Prefect server (OAPIP_PREFECT_PORT)."
    )
    database_url: str | None = Field(
        default=None,
        description="Database of the embedded Prefect server (OAPIP_DATABASE_URL), e.g. "
        "`postgresql+asyncpg://postgres@127.0.0.1:5432/prefect`. Unset: SQLite in home.",
    )

    @property
    def results_url(self) -> str:
        """Base URL of the result store (``file://`` or ``s3://``)."""
        return self.storage_url or (self.home / "results").resolve().as_uri()

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
