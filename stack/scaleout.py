"""Prefect's production shape on one machine: N API processes, one services process,
Redis messaging (``oapip up --prefect-replicas N``).

As Prefect documents its multi-worker server: PostgreSQL, ``prefect-redis`` for the
message broker, the messaging cache, causal ordering and concurrency leases, Docket on
Redis; ``prefect server start --workers N`` (API processes only, one port) and one
``prefect server services start`` with every background service.
"""

from __future__ import annotations

from urllib.parse import urlparse

from core.settings import Settings

__all__ = ["redis_env", "scaled_out"]


def scaled_out(settings: Settings) -> bool:
    """Whether the stack runs more than one Prefect API process."""
    return settings.stack.prefect_replicas > 1


def redis_env(settings: Settings) -> dict[str, str]:
    """The Prefect server's settings for messaging, ordering, leases and Docket on Redis.

    ``ValueError`` without PostgreSQL: SQLite takes one server process only.
    """
    url = settings.stack.database_url or ""
    if not url.startswith("postgresql"):
        raise ValueError(
            "OAPIP_PREFECT_REPLICAS > 1 needs the Prefect server on PostgreSQL: "
            "set OAPIP_DATABASE_URL=postgresql+asyncpg://…"
        )
    redis = urlparse(settings.stack.redis_url)
    return {
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_HOST": redis.hostname or "127.0.0.1",
        "PREFECT_REDIS_MESSAGING_PORT": str(redis.port or 6379),
        "PREFECT_REDIS_MESSAGING_DB": (redis.path or "/0").strip("/") or "0",
        "PREFECT_SERVER_DOCKET_URL": settings.stack.redis_url,
    }
