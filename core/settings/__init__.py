"""Every setting of the engine, read once from the environment, grouped per component.

Names follow what operators of the reference deployment already use (S3_ENDPOINT,
OAPIP_TOIL_WES_URL, ...); engine-specific ones start with ``OAPIP_``. Each component's
settings are one class (``settings.toil.wes_url``, ``settings.results.s3_bucket``) in
:mod:`core.settings.services`, :mod:`core.settings.backends` or :mod:`core.settings.data`;
each field documents its environment variable and unit, and the README's table is
generated from them (``python -m core.settings``). Nothing else in the code reads
``os.environ`` for configuration: take a ``Settings`` instance instead.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field, model_validator

from core.settings.backends import (
    CalrissianSettings,
    ExecutionSettings,
    KubernetesPoolSettings,
    ToilSettings,
)
from core.settings.base import Group, config
from core.settings.data import (
    ResultSettings,
    RetentionSettings,
    StageInSettings,
    TransferSettings,
    WorkspaceSettings,
)
from core.settings.services import (
    CallbackSettings,
    GatewaySettings,
    OidcSettings,
    OutboundSettings,
    PrefectSettings,
    QuotaSettings,
    StackSettings,
    WorkerSettings,
)

__all__ = [
    "CalrissianSettings",
    "CallbackSettings",
    "ExecutionSettings",
    "GatewaySettings",
    "Group",
    "KubernetesPoolSettings",
    "OidcSettings",
    "OutboundSettings",
    "PrefectSettings",
    "QuotaSettings",
    "ResultSettings",
    "RetentionSettings",
    "Settings",
    "StackSettings",
    "StageInSettings",
    "ToilSettings",
    "TransferSettings",
    "WorkerSettings",
    "WorkspaceSettings",
    "get_settings",
]


def _default_home() -> Path:
    return Path.home() / ".oapip"


class Settings(Group):
    """Engine settings: two of their own, and one group per component."""

    model_config = config("OAPIP_")

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
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    toil: ToilSettings = Field(default_factory=ToilSettings)
    calrissian: CalrissianSettings = Field(default_factory=CalrissianSettings)
    kubernetes_pool: KubernetesPoolSettings = Field(default_factory=KubernetesPoolSettings)
    results: ResultSettings = Field(default_factory=ResultSettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    stagein: StageInSettings = Field(default_factory=StageInSettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)

    @model_validator(mode="after")
    def _toil_needs_a_url(self) -> Settings:
        url = self.toil.wes_url
        if self.execution.engine == "toil" and not url:
            raise ValueError("OAPIP_EXECUTION_ENGINE=toil needs OAPIP_TOIL_WES_URL")
        if url and not url.rstrip("/").endswith("/ga4gh/wes/v1"):
            raise ValueError(f"OAPIP_TOIL_WES_URL must end with /ga4gh/wes/v1/, not {url!r}")
        return self

    @model_validator(mode="after")
    def _api_url_follows_port(self) -> Settings:
        # Only the port given: the embedded server's API is there, not on the default port.
        if "api_url" not in self.prefect.model_fields_set:
            self.prefect.api_url = f"http://127.0.0.1:{self.stack.prefect_port}/api"
        return self

    @property
    def results_url(self) -> str:
        """Base URL of the result store (``file://`` or ``s3://``).

        The one place the choice is made: an explicit ``OAPIP_STORAGE_URL`` wins; else S3
        when ``S3_ENDPOINT`` is set; else the local disk.
        """
        if self.results.storage_url:
            return self.results.storage_url
        if self.results.s3_endpoint:
            return f"s3://{self.results.s3_bucket}"
        return (self.home / "results").resolve().as_uri()

    def job_dir(self, job_id: str) -> Path:
        """The work directory of job ``job_id`` (inputs, outputs, cwltool's scratch)."""
        return self.home / "jobs" / job_id

    @property
    def ui_url(self) -> str:
        """Prefect UI base URL (no trailing slash)."""
        if self.prefect.ui_url:
            return self.prefect.ui_url.rstrip("/")
        return self.prefect.api_url.rstrip("/").removesuffix("/api")


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
