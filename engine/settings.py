"""Every setting of the engine, read once from the environment.

Names follow what operators of the reference deployment already use (S3_ENDPOINT,
OAPIP_TOIL_WES_URL, ...); engine-specific ones start with ``OAPIP_``. Nothing else in
the code reads ``os.environ`` for configuration: take a ``Settings`` instance instead.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
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
    execution_engine: Literal["cwltool", "toil", "calrissian"] = Field(
        default="cwltool",
        validation_alias=AliasChoices("OAPIP_EXECUTION_ENGINE", "execution_engine"),
        description="Backend that runs CWL when a process does not name one: `cwltool` "
        "on the worker, `toil` on an HPC site through Toil WES (`OAPIP_TOIL_WES_URL`).",
    )
    toil_wes_url: str | None = Field(
        default=None,
        description="Toil WES endpoint of the HPC site, ending with `/ga4gh/wes/v1/`. "
        "Needed when any process runs on `toil`.",
        examples=["https://hpc.example.org/ga4gh/wes/v1/"],
    )
    toil_wes_user: str | None = Field(
        default=None,
        description="User name for basic authentication at the Toil WES endpoint.",
    )
    toil_wes_password: SecretStr | None = Field(
        default=None,
        description="Password for basic authentication at the Toil WES endpoint.",
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
    calrissian_max_ram_mib: int = Field(
        default=1024,
        ge=1024,
        description="Calrissian's RAM budget per job when the CWL asks for less, MiB.",
    )
    calrissian_max_cores: int = Field(
        default=2,
        ge=1,
        description="Calrissian's core budget per job when the CWL asks for less.",
    )

    # --- results -----------------------------------------------------------------------
    storage_url: str | None = Field(
        default=None,
        description="Where results are stored: `file:///path`, or `s3://bucket` (with the "
        "`S3_*` endpoint and credentials). Unset: `s3://<OAPIP_S3_BUCKET>` when "
        "`S3_ENDPOINT` is set, else `<home>/results` on the local disk.",
        examples=["file:///srv/oapip/results", "s3://eoepca"],
    )
    results_prefix: str = Field(
        default="processing-results",
        description="Key prefix of job results; a job's files go under `<prefix>/<jobID>/`.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("S3_ENDPOINT", "s3_endpoint"),
        description="Stage-out S3 endpoint. Results go to S3 when this is set (or "
        "`OAPIP_STORAGE_URL` is an `s3://` URL); unset, they stay on the local disk.",
        examples=["https://minio.example.org"],
    )
    s3_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("S3_ACCESS_KEY", "s3_access_key"),
        description="Access key of the stage-out S3 endpoint.",
    )
    s3_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("S3_SECRET_KEY", "s3_secret_key"),
        description="Secret key of the stage-out S3 endpoint.",
    )
    s3_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("S3_REGION", "s3_region"),
        description="Region of the stage-out S3 endpoint.",
    )
    s3_bucket: str = Field(
        default="eoepca",
        description="Bucket results are uploaded to (with `S3_ENDPOINT`, outside workspace "
        "mode); it must exist.",
    )
    stagein_s3_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STAGEIN_S3_ENDPOINT", "stagein_s3_endpoint"),
        description="S3 endpoint `s3://` inputs are read from. Unset: AWS's default.",
    )
    stagein_s3_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STAGEIN_S3_ACCESS_KEY", "stagein_s3_access_key"),
        description="Access key for reading `s3://` inputs.",
    )
    stagein_s3_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STAGEIN_S3_SECRET_KEY", "stagein_s3_secret_key"),
        description="Secret key for reading `s3://` inputs.",
    )
    stagein_s3_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("STAGEIN_S3_REGION", "stagein_s3_region"),
        description="Region of the stage-in S3 endpoint.",
    )
    use_workspace_api: bool = Field(
        default=False,
        validation_alias=AliasChoices("USE_WORKSPACE_API", "use_workspace_api"),
        description="Upload each job's results to its user's `<prefix>-<user>` bucket, with "
        "the bucket and credentials looked up from the Workspace API "
        "(`OAPIP_WORKSPACE_API_URL`) before the job runs.",
    )
    workspace_api_url: str | None = Field(
        default=None,
        description="Base URL of the EOEPCA Workspace API; the engine reads "
        "`GET <url>/workspaces/<prefix>-<user>`.",
        examples=["https://workspace-api.example.org"],
    )
    workspace_prefix: str = Field(
        default="ws",
        description="Prefix of workspace names: user `bob` has workspace `ws-bob`.",
    )
    workspace_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token sent to the Workspace API. Unset: no Authorization header.",
    )
    workspace_fallback: bool = Field(
        default=False,
        description="When the Workspace API lookup fails: `true` uploads to the shared "
        "bucket (`OAPIP_S3_BUCKET` with `S3_*` credentials), `false` fails the job.",
    )
    staging_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Attempts of one download or S3 call before stage-in/stage-out gives up "
        "on transient errors (connection refused, timeouts, HTTP 5xx).",
    )
    staging_backoff_s: float = Field(
        default=0.5,
        ge=0,
        description="First wait between HTTP download attempts, seconds; doubled after each "
        "(S3 calls back off as botocore's standard retry mode does).",
    )
    transfer_chunk_mib: int = Field(
        default=16,
        ge=5,
        description="Part size of S3 multipart uploads and ranged downloads, MiB.",
    )
    transfer_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Parts (or files of a folder) transferred to or from S3 at once.",
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

    package_href_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR, JSON list) a deploy `href` may resolve to besides public "
        "addresses. Loopback, private, link-local and other non-public addresses are refused "
        "unless listed here.",
        examples=['["10.0.0.0/8"]', '["127.0.0.0/8", "::1/128"]'],
    )
    max_job_ram_mib: int = Field(
        default=1024,
        ge=1,
        description="Most RAM one job may ask for, MiB: a package whose ResourceRequirement "
        "`ramMin` is larger is refused at deploy (400).",
    )
    max_job_cores: float = Field(
        default=2,
        gt=0,
        description="Most cores one job may ask for: a package whose ResourceRequirement "
        "`coresMin` is larger is refused at deploy (400).",
    )

    # --- authentication (OIDC) -----------------------------------------------------------
    oidc_issuer: str | None = Field(
        default=None,
        description="OIDC issuer URL. Set: every request but the landing page, /conformance, "
        "/api and Swagger UI needs a bearer JWT from this issuer. Unset: open mode, the "
        "path's `{user}` is the user.",
        examples=["https://auth.example.org/realms/eoepca"],
    )
    oidc_client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OAPIP_OIDC_CLIENT_ID", "OAPIP_OIDC_AUDIENCE"),
        description="Audience every token must carry (`aud`), usually the gateway's client "
        "id. Unset: the audience is not checked.",
    )
    oidc_user_claim: str = Field(
        default="preferred_username",
        description="Token claim that names the user.",
    )
    oidc_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        description="Signature algorithms accepted (JSON list); asymmetric only: `none` and "
        "HS* are refused.",
    )
    oidc_leeway_s: float = Field(
        default=30.0,
        ge=0,
        description="Clock skew allowed when checking `exp` and `nbf`, seconds.",
    )
    oidc_jwks_refresh_s: float = Field(
        default=30.0,
        ge=0,
        description="Least time between two fetches of the issuer's keys, seconds: a token "
        "with an unknown `kid` refetches them at most this often.",
    )

    # --- schedules and callbacks -------------------------------------------------------
    schedule_min_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="Shortest interval a reprocessing schedule may have, seconds; "
        "a cron schedule fires at most once a minute anyway.",
    )
    callback_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Attempts to deliver one callback to a subscriber URI; the waits "
        "between them double from 1 s.",
    )
    callback_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time one callback delivery attempt may take, seconds.",
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

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        # `none` would accept unsigned tokens; HS* would let a public key act as a secret.
        refused = [a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if refused or not algorithms:
            raise ValueError(f"OAPIP_OIDC_ALGORITHMS must be asymmetric algorithms, not {refused}")
        return algorithms

    @field_validator("package_href_allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        import ipaddress

        for network in networks:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return networks

    @model_validator(mode="after")
    def _toil_needs_a_url(self) -> Settings:
        if self.execution_engine == "toil" and not self.toil_wes_url:
            raise ValueError("OAPIP_EXECUTION_ENGINE=toil needs OAPIP_TOIL_WES_URL")
        if self.toil_wes_url and not self.toil_wes_url.rstrip("/").endswith("/ga4gh/wes/v1"):
            raise ValueError(
                f"OAPIP_TOIL_WES_URL must end with /ga4gh/wes/v1/, not {self.toil_wes_url!r}"
            )
        return self

    @model_validator(mode="after")
    def _api_url_follows_port(self) -> Settings:
        # Only the port given: the embedded server's API is there, not on the default port.
        if "prefect_api_url" not in self.model_fields_set:
            self.prefect_api_url = f"http://127.0.0.1:{self.prefect_port}/api"
        return self

    @property
    def results_url(self) -> str:
        """Base URL of the result store (``file://`` or ``s3://``).

        The one place the choice is made: an explicit ``storage_url`` wins; else S3 when
        ``S3_ENDPOINT`` is set; else the local disk.
        """
        if self.storage_url:
            return self.storage_url
        if self.s3_endpoint:
            return f"s3://{self.s3_bucket}"
        return (self.home / "results").resolve().as_uri()

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
            value = "~/.oapip" if name == "home" else json.dumps(field.default_factory())
            default = f"`{value}`"
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
