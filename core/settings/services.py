"""Settings of the engine's own services: Prefect, the embedded stack, the worker,
the gateway's limits, OIDC and callbacks."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator

from core.settings.base import Group, config

__all__ = [
    "CallbackSettings",
    "GatewaySettings",
    "OidcSettings",
    "OutboundSettings",
    "PrefectSettings",
    "QuotaSettings",
    "StackSettings",
    "WorkerSettings",
]


class PrefectSettings(Group):
    """The Prefect server the engine uses."""

    model_config = config("OAPIP_PREFECT_")

    api_url: str = Field(
        validation_alias=AliasChoices("PREFECT_API_URL", "OAPIP_PREFECT_API_URL", "api_url"),
        default="http://127.0.0.1:4200/api",
        description="Prefect server API. Unset: the embedded server, "
        "`http://127.0.0.1:<OAPIP_PREFECT_PORT>/api`.",
    )
    ui_url: str | None = Field(
        default=None,
        description="Prefect UI base URL for links from job status. "
        "Unset: derived from the API URL.",
    )
    write_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Writes (flow-run creations, state changes) one gateway or worker sends "
        "the Prefect server at once. Prefect on SQLite "
        "serialises writers and degrades badly under concurrent ones (10 concurrent creations "
        "took 6 s, one at a time 0.5 s): keep 1 there; 8 suits PostgreSQL.",
    )
    work_pool: str = Field(
        validation_alias=AliasChoices("OAPIP_WORK_POOL", "work_pool"),
        default="oapip",
        description="Prefect work pool that every process deployment targets.",
    )
    results_dir: Path | None = Field(
        default=None,
        description="Folder of the flows' persisted results (the OGC results documents the "
        "gateway reads back): on a volume the workers, their jobs and the gateway share when "
        "they run apart. Unset: `<OAPIP_HOME>/prefect-results`.",
        examples=["/var/lib/oapip/data/prefect-results"],
    )


class StackSettings(Group):
    """The embedded single-machine stack (`oapip up`)."""

    model_config = config("OAPIP_")

    host: str = Field(
        default="127.0.0.1",
        description="Address the gateway listens on.",
    )
    port: int = Field(
        default=8000,
        description="Port of the gateway.",
    )
    prefect_port: int = Field(
        default=4200,
        description="Port of the embedded Prefect server.",
    )
    database_url: str | None = Field(
        default=None,
        description="Database of the embedded Prefect server, e.g. "
        "`postgresql+asyncpg://postgres@127.0.0.1:5432/prefect`. Unset: SQLite in home.",
    )
    prefect_replicas: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Prefect API processes of the embedded stack. Above 1, Prefect's "
        "production shape: that many API processes without services (`--workers`), one "
        "`prefect server services start`, messaging and leases on Redis "
        "(`OAPIP_REDIS_URL`); needs `OAPIP_DATABASE_URL` (PostgreSQL).",
    )
    fast_workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Fast worker processes the embedded stack starts on its one work pool; "
        "they share the queue (a run is claimed by one of them).",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis of the scaled-out Prefect server (`OAPIP_PREFECT_REPLICAS` > 1): "
        "messaging, causal ordering, concurrency leases.",
    )


class WorkerSettings(Group):
    """The fast worker and its job processes."""

    model_config = config("OAPIP_WORKER_")

    slots: int = Field(
        default=8,
        ge=1,
        description="Jobs one fast worker runs at once.",
    )
    job_memory_limit_mib: int = Field(
        validation_alias=AliasChoices("OAPIP_JOB_MEMORY_LIMIT_MIB", "job_memory_limit_mib"),
        default=4096,
        ge=128,
        description="Address-space cap of one job's engine process, MiB "
        "; tools started by the job inherit it.",
    )


class GatewaySettings(Group):
    """Limits on what a request may ask of the gateway."""

    model_config = config("OAPIP_")

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
    outbox: bool = Field(
        default=True,
        description="Answer an execute request after one durable local write (the job "
        "outbox) and create flow runs in bulk behind it; false: create each job's flow run "
        "during its request.",
    )
    outbox_database_url: str | None = Field(
        default=None,
        description="PostgreSQL database of the job outbox (Prefect's own: a table "
        "`oapip_outbox`), shared by every gateway replica; `oapip up` sets it from "
        "`OAPIP_DATABASE_URL`. Unset: a SQLite file `outbox.db` in `OAPIP_HOME` (one gateway).",
        examples=["postgresql+asyncpg://prefect:secret@db:5432/prefect"],
    )
    schedule_min_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="Shortest interval a reprocessing schedule may have, seconds; "
        "a cron schedule fires at most once a minute anyway.",
    )


class OutboundSettings(Group):
    """Where the engine may connect for its users (``core/http.py``, the one guard)."""

    model_config = config("OAPIP_")

    allowed_networks: list[str] = Field(
        validation_alias=AliasChoices(
            "OAPIP_ALLOWED_NETWORKS", "OAPIP_PACKAGE_HREF_ALLOWED_NETWORKS", "allowed_networks"
        ),
        default_factory=list,
        description="Networks (CIDR, JSON list) the URLs users give may reach besides public "
        "addresses: deploy `href`s, input `href`s with every redirect and STAC link met "
        "staging them, and callback URIs. Loopback, private, link-local and other "
        "non-public addresses are refused unless listed here; cloud metadata addresses and "
        "the engine's own services (Prefect API, gateway, S3 endpoints, database, WES, "
        "Workspace API) are refused even then. `OAPIP_PACKAGE_HREF_ALLOWED_NETWORKS`, its "
        "name when it covered deploy `href`s only, is read too.",
        examples=['["10.0.0.0/8"]', '["127.0.0.0/8", "::1/128"]'],
    )

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return networks


class OidcSettings(Group):
    """Bearer tokens from an OIDC issuer (multi-user mode)."""

    model_config = config("OAPIP_OIDC_")

    issuer: str | None = Field(
        default=None,
        description="OIDC issuer URL. Set: every request but the landing page, /conformance, "
        "/api and Swagger UI needs a bearer JWT from this issuer. Unset: open mode, the "
        "path's `{user}` is the user.",
        examples=["https://auth.example.org/realms/eoepca"],
    )
    client_id: str | None = Field(
        validation_alias=AliasChoices("OAPIP_OIDC_CLIENT_ID", "OAPIP_OIDC_AUDIENCE", "client_id"),
        default=None,
        description="Audience every token must carry (`aud`), usually the gateway's client "
        "id. Unset: the audience is not checked.",
    )
    user_claim: str = Field(
        default="preferred_username",
        description="Token claim that names the user.",
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        description="Signature algorithms accepted (JSON list); asymmetric only: `none` and "
        "HS* are refused.",
    )
    leeway_s: float = Field(
        default=30.0,
        ge=0,
        description="Clock skew allowed when checking `exp` and `nbf`, seconds.",
    )
    jwks_refresh_s: float = Field(
        default=30.0,
        ge=0,
        description="Least time between two fetches of the issuer's keys, seconds: a token "
        "with an unknown `kid` refetches them at most this often.",
    )

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        # `none` would accept unsigned tokens; HS* would let a public key act as a secret.
        refused = [a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if refused or not algorithms:
            raise ValueError(f"OAPIP_OIDC_ALGORITHMS must be asymmetric algorithms, not {refused}")
        return algorithms


class CallbackSettings(Group):
    """Calls back to an execute request's subscriber."""

    model_config = config("OAPIP_CALLBACK_")

    attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Attempts to deliver one callback to a subscriber URI; the waits "
        "between them double from 1 s.",
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time one callback delivery attempt may take, seconds.",
    )


class QuotaSettings(Group):
    """What one user may hold at once, and how long one job may run (fair share).

    The running limit is a Prefect global concurrency limit per user (``user:<name>``),
    created with this value the first time the user submits a job: an operator sees its
    usage on Prefect's concurrency page and may raise (or lower) one user's limit there,
    without a restart.
    """

    model_config = config("OAPIP_")

    user_max_running: int = Field(
        default=4,
        ge=0,
        description="Jobs of one user that run at once; the others wait `accepted`, and the "
        "worker starts next the job of the user with the fewest running. It is the initial "
        "value of the user's Prefect global concurrency limit `user:<name>`, which an "
        "operator may change per user in the Prefect UI. 0: no limit.",
    )
    user_max_queued: int = Field(
        default=100,
        ge=0,
        description="Accepted (not yet running) jobs one user may have; one more is refused "
        "with 429 and `Retry-After`. 0: no limit.",
    )
    max_job_seconds: int = Field(
        default=86400,
        ge=0,
        description="Longest a job may run, seconds, site-wide; a process whose tools all "
        "declare a CWL `ToolTimeLimit` gets at most their sum. A job past it is stopped (its "
        "tools killed, its remote runs cancelled) and ends `failed`. 0: no limit.",
    )
    user_max_processes: int = Field(
        default=50,
        ge=0,
        description="Processes one user may have deployed. 0: no limit.",
    )
    user_max_schedules: int = Field(
        default=20,
        ge=0,
        description="Reprocessing schedules one user may have, over all their processes. "
        "0: no limit.",
    )
