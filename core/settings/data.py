"""Settings of data in and out: the result store, workspaces, stage-in, transfers."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from core.settings.base import Group, config

__all__ = [
    "ResultSettings",
    "RetentionSettings",
    "StageInSettings",
    "TransferSettings",
    "WorkspaceSettings",
]


class ResultSettings(Group):
    """Where results go (stage-out)."""

    model_config = config("OAPIP_")

    storage_url: str | None = Field(
        default=None,
        description="Where results are stored: `file:///path`, or `s3://bucket` (with the "
        "`S3_*` endpoint and credentials). Unset: `s3://<OAPIP_S3_BUCKET>` when "
        "`S3_ENDPOINT` is set, else `<home>/results` on the local disk.",
        examples=["file:///srv/oapip/results", "s3://eoepca"],
    )
    prefix: str = Field(
        validation_alias=AliasChoices("OAPIP_RESULTS_PREFIX", "prefix"),
        default="processing-results",
        description="Key prefix of job results; a job's files go under `<prefix>/<jobID>/`.",
    )
    s3_endpoint: str | None = Field(
        validation_alias=AliasChoices("S3_ENDPOINT", "s3_endpoint"),
        default=None,
        description="Stage-out S3 endpoint. Results go to S3 when this is set (or "
        "`OAPIP_STORAGE_URL` is an `s3://` URL); unset, they stay on the local disk.",
        examples=["https://minio.example.org"],
    )
    s3_access_key: SecretStr | None = Field(
        validation_alias=AliasChoices("S3_ACCESS_KEY", "s3_access_key"),
        default=None,
        description="Access key of the stage-out S3 endpoint.",
    )
    s3_secret_key: SecretStr | None = Field(
        validation_alias=AliasChoices("S3_SECRET_KEY", "s3_secret_key"),
        default=None,
        description="Secret key of the stage-out S3 endpoint.",
    )
    s3_region: str = Field(
        validation_alias=AliasChoices("S3_REGION", "s3_region"),
        default="us-east-1",
        description="Region of the stage-out S3 endpoint.",
    )
    s3_bucket: str = Field(
        default="eoepca",
        description="Bucket results are uploaded to (with `S3_ENDPOINT`, outside workspace "
        "mode); it must exist.",
    )


class WorkspaceSettings(Group):
    """Results in each user's workspace bucket (EOEPCA Workspace API)."""

    model_config = config("OAPIP_WORKSPACE_")

    enabled: bool = Field(
        validation_alias=AliasChoices("USE_WORKSPACE_API", "enabled"),
        default=False,
        description="Upload each job's results to its user's `<prefix>-<user>` bucket, with "
        "the bucket and credentials looked up from the Workspace API "
        "(`OAPIP_WORKSPACE_API_URL`) before the job runs.",
    )

    api_url: str | None = Field(
        default=None,
        description="Base URL of the EOEPCA Workspace API; the engine reads "
        "`GET <url>/workspaces/<prefix>-<user>`.",
        examples=["https://workspace-api.example.org"],
    )
    prefix: str = Field(
        default="ws",
        description="Prefix of workspace names: user `bob` has workspace `ws-bob`.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token sent to the Workspace API. Unset: no Authorization header.",
    )
    fallback: bool = Field(
        default=False,
        description="When the Workspace API lookup fails: `true` uploads to the shared "
        "bucket (`OAPIP_S3_BUCKET` with `S3_*` credentials), `false` fails the job.",
    )


class StageInSettings(Group):
    """The S3 endpoint `s3://` inputs are read from."""

    model_config = config("STAGEIN_S3_")
    endpoint: str | None = Field(
        default=None,
        description="S3 endpoint `s3://` inputs are read from. Unset: AWS's default.",
    )
    access_key: SecretStr | None = Field(
        default=None,
        description="Access key for reading `s3://` inputs.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Secret key for reading `s3://` inputs.",
    )
    region: str = Field(
        default="us-east-1",
        description="Region of the stage-in S3 endpoint.",
    )


class TransferSettings(Group):
    """Retries and parallelism of stage-in and stage-out."""

    model_config = config("OAPIP_TRANSFER_")

    attempts: int = Field(
        validation_alias=AliasChoices("OAPIP_STAGING_ATTEMPTS", "attempts"),
        default=4,
        ge=1,
        le=20,
        description="Attempts of one download or S3 call before stage-in/stage-out gives up "
        "on transient errors (connection refused, timeouts, HTTP 5xx).",
    )
    backoff_s: float = Field(
        validation_alias=AliasChoices("OAPIP_STAGING_BACKOFF_S", "backoff_s"),
        default=0.5,
        ge=0,
        description="First wait between HTTP download attempts, seconds; doubled after each "
        "(S3 calls back off as botocore's standard retry mode does).",
    )
    chunk_mib: int = Field(
        default=16,
        ge=5,
        description="Part size of S3 multipart uploads and ranged downloads, MiB.",
    )
    concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Parts (or files of a folder) transferred to or from S3 at once.",
    )


class RetentionSettings(Group):
    """How long finished jobs keep their results and records (housekeeping)."""

    model_config = config("OAPIP_")

    retention_days: float | None = Field(
        validation_alias=AliasChoices("OAPIP_JOB_RETENTION_DAYS", "retention_days"),
        default=None,
        gt=0,
        description="Days a finished job keeps its results; then the job answers 410 Gone "
        "for its results and the housekeeping flow removes them. Fractions are allowed "
        "(0.5 is 12 hours). A process deployed with `jobRetentionDays` keeps its jobs' "
        "results that long instead, at most this. Unset: results are kept until the job "
        "is deleted (or for its process's `jobRetentionDays`).",
        examples=[30],
    )
    purge_days: float | None = Field(
        validation_alias=AliasChoices("OAPIP_JOB_PURGE_DAYS", "purge_days"),
        default=None,
        ge=0,
        description="Days an expired job's record (its Prefect flow run, logs and "
        "artifacts) is kept after its results expired; then housekeeping deletes it and "
        "the job is 404. Unset: records of expired jobs are kept.",
        examples=[60],
    )
    housekeeping_interval_s: float = Field(
        validation_alias=AliasChoices("OAPIP_HOUSEKEEPING_INTERVAL_S", "housekeeping_interval_s"),
        default=3600,
        ge=1,
        description="Seconds between runs of the housekeeping deployment's schedule.",
    )
    housekeeping_duty: float = Field(
        validation_alias=AliasChoices("OAPIP_HOUSEKEEPING_DUTY", "housekeeping_duty"),
        default=0.25,
        gt=0,
        le=1,
        description="Share of its time a housekeeping run works: it makes one call at a "
        "time (a tag, a delete, a removal of results) and after each rests in proportion "
        "to the time the call took (0.5: as long; 0.25: three times as long), so that it "
        "leaves the rest of the Prefect server and the database to submissions and jobs, "
        "and slows down when they are loaded. 1: no rest.",
        examples=[0.25, 0.5, 1],
    )
    keep_failed_outputs: bool = Field(
        validation_alias=AliasChoices("OAPIP_KEEP_FAILED_OUTPUTS", "keep_failed_outputs"),
        default=False,
        description="Keep what a failed job had uploaded before it failed (for debugging); "
        "its status message then says where. Unset: a failed job's partial results are "
        "removed.",
    )
