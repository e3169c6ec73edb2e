"""Prefect's production shape on one machine: N API processes, one services process,
Redis messaging (``oapip up --prefect-replicas N``).

As Prefect documents its multi-worker server: PostgreSQL, ``prefect-redis`` for the
message broker, the messaging cache, causal ordering, concurrency leases and the
worker-channel cleanup queue (Docket stays in each process: see :func:`redis_env`); N API
processes on one port and one ``prefect server services start`` with every background
service.

The API processes are what ``prefect server start --workers N`` runs (uvicorn workers of
``prefect.server.api.server:create_app``, webserver only), started with uvicorn directly:
uvicorn's supervisor kills a worker that does not answer its health check within 5 s, and
on a loaded 2-core machine importing Prefect's server takes longer, so the CLI's workers
were killed and restarted forever. The database is migrated once before anything starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from core.settings import Settings

__all__ = ["api_argv", "redis_env", "scaled_out"]


def scaled_out(settings: Settings) -> bool:
    """Whether the stack runs more than one Prefect API process."""
    return settings.stack.prefect_replicas > 1


def redis_env(settings: Settings) -> dict[str, str]:
    """The Prefect server's settings for messaging, ordering and leases on Redis.

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
        "PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE": "prefect_redis.cleanup_queue",
        # Docket stays in each process (memory://): on Redis 7.0 (these machines') a
        # server with PREFECT_SERVER_DOCKET_URL=redis://… never finished starting.
    }


def api_argv(settings: Settings, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Migrate Prefect's database; the command line and environment of the N API
    processes (webserver only)."""
    prefect = str(Path(sys.executable).parent / "prefect")
    subprocess.run(
        [prefect, "server", "database", "upgrade", "-y"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    api_env = {**env, "PREFECT__SERVER_FINAL": "1", "PREFECT__SERVER_WEBSERVER_ONLY": "1"}
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.stack.prefect_port),
        "--workers",
        str(settings.stack.prefect_replicas),
        "--timeout-worker-healthcheck",
        "300",
        "--no-access-log",
    ], api_env
