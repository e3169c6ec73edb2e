"""The gateway's job outbox: a submitted job is one durable local write, answered at once.

``POST …/execution`` makes the jobID (a UUID), writes the job's flow-run request here and
answers 201 ``accepted``; the drainer (:mod:`ogc_prefect.drainer`) creates the flow runs in
Prefect in bulk, with the jobID as the run's idempotency key, and removes the rows once
Prefect holds the runs. A replay after a crash (rows created but not yet removed) gives
back the same runs: the key is unique per flow in Prefect's database.

Two stores, one contract (:class:`Outbox`):

* :class:`SqliteOutbox`, a SQLite file in ``OAPIP_HOME`` (the embedded default, one
  gateway): WAL, ``synchronous=NORMAL`` (a commit survives a killed process; only a power
  cut may lose the last ones). A lock in the process orders the drainer and dismissals.
* :class:`PostgresOutbox`, a table in Prefect's own PostgreSQL database: the drainer of
  each gateway replica claims rows with ``FOR UPDATE SKIP LOCKED`` and holds them until
  Prefect answered; a dismissal waits for a claimed row's transaction to end.

A row whose run Prefect refuses for good (its process was undeployed meanwhile) keeps the
reason in ``error``: the job reads ``failed`` until the user dismisses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Claim", "Outbox", "OutboxRow", "PostgresOutbox", "SqliteOutbox", "open_outbox"]

BULK_LIMIT = 100
"""Most flow runs one ``create_flow_run/bulk`` call may create (Prefect's limit)."""

_COLUMNS = "job_id, owner, process_id, deployment_id, body, created, error"


@dataclass(frozen=True)
class OutboxRow:
    """One job waiting for its flow run: ``body`` is the ``DeploymentFlowRunCreate`` JSON
    (parameters, tags, name, idempotency key = ``job_id``)."""

    job_id: str
    owner: str
    process_id: str
    deployment_id: str
    body: dict[str, Any]
    created: dt.datetime
    error: str | None = None


def _row(values: Any) -> OutboxRow:
    job_id, owner, process_id, deployment_id, body, created, error = values
    if not isinstance(created, dt.datetime):
        created = dt.datetime.fromtimestamp(created, dt.UTC)
    return OutboxRow(
        str(job_id), owner, process_id, str(deployment_id), json.loads(body), created, error
    )


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class Claim:
    """Rows a drainer holds until it has settled each of them (:meth:`done`, :meth:`fail`)."""

    def __init__(self, rows: list[OutboxRow]) -> None:
        self.rows = rows
        self.done_ids: list[str] = []
        self.failed: dict[str, str] = {}

    def done(self, job_id: str) -> None:
        """Prefect holds the job's run: the row goes."""
        self.done_ids.append(job_id)

    def fail(self, job_id: str, error: str) -> None:
        """Prefect refused the job's run for good: the row stays, failed with ``error``."""
        self.failed[job_id] = error


class Outbox:
    """What the gateway and the drainer need of an outbox (see the module docstring)."""

    wake: asyncio.Event
    """Set by :meth:`put`: the drainer need not wait for its next poll."""

    async def put(self, row: OutboxRow) -> None:
        raise NotImplementedError

    async def get(self, owner: str, job_id: str) -> OutboxRow | None:
        raise NotImplementedError

    async def list(self, owner: str) -> list[OutboxRow]:
        """``owner``'s waiting jobs, newest first."""
        raise NotImplementedError

    async def remove(self, owner: str, job_id: str) -> OutboxRow | None:
        """Take ``owner``'s job out (dismissed before its run existed); the row, or None
        when it is not here (any more: a drainer holding it has created its run)."""
        raise NotImplementedError

    def claim(self, limit: int = BULK_LIMIT) -> contextlib.AbstractAsyncContextManager[Claim]:
        """Hold up to ``limit`` waiting rows, oldest first, for one drainer."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class SqliteOutbox(Outbox):
    """The outbox as a SQLite file (one gateway process writes it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (job_id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
            " process_id TEXT NOT NULL, deployment_id TEXT NOT NULL, body TEXT NOT NULL,"
            " created REAL NOT NULL, error TEXT)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS outbox_owner ON outbox (owner, created)")
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()

    async def put(self, row: OutboxRow) -> None:
        # A few tens of microseconds: no thread hop.
        self.db.execute(
            f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (
                row.job_id,
                row.owner,
                row.process_id,
                row.deployment_id,
                json.dumps(row.body),
                row.created.timestamp(),
            ),
        )
        self.wake.set()

    async def get(self, owner: str, job_id: str) -> OutboxRow | None:
        found = self.db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE job_id = ? AND owner = ?", (job_id, owner)
        ).fetchone()
        return _row(found) if found else None

    async def list(self, owner: str) -> list[OutboxRow]:
        found = self.db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE owner = ? ORDER BY created DESC", (owner,)
        ).fetchall()
        return [_row(r) for r in found]

    async def remove(self, owner: str, job_id: str) -> OutboxRow | None:
        async with self.lock:
            row = await self.get(owner, job_id)
            if row is not None:
                self.db.execute("DELETE FROM outbox WHERE job_id = ?", (job_id,))
            return row

    @contextlib.asynccontextmanager
    async def claim(self, limit: int = BULK_LIMIT) -> AsyncIterator[Claim]:
        async with self.lock:
            found = self.db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE error IS NULL ORDER BY created LIMIT ?",
                (limit,),
            ).fetchall()
            claim = Claim([_row(r) for r in found])
            yield claim
            with self.db:
                self.db.executemany(
                    "DELETE FROM outbox WHERE job_id = ?", [(i,) for i in claim.done_ids]
                )
                self.db.executemany(
                    "UPDATE outbox SET error = ? WHERE job_id = ?",
                    [(e, i) for i, e in claim.failed.items()],
                )

    async def close(self) -> None:
        self.db.close()


class PostgresOutbox(Outbox):
    """The outbox as the table ``oapip_outbox`` of Prefect's PostgreSQL database."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.wake = asyncio.Event()

    @classmethod
    async def connect(cls, url: str) -> PostgresOutbox:
        import asyncpg  # Prefect's own PostgreSQL driver

        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS oapip_outbox (job_id UUID PRIMARY KEY,"
                " owner TEXT NOT NULL, process_id TEXT NOT NULL, deployment_id UUID NOT NULL,"
                " body TEXT NOT NULL, created TIMESTAMPTZ NOT NULL, error TEXT);"
                "CREATE INDEX IF NOT EXISTS oapip_outbox_owner"
                " ON oapip_outbox (owner, created)"
            )
        return cls(pool)

    async def put(self, row: OutboxRow) -> None:
        await self.pool.execute(
            f"INSERT INTO oapip_outbox ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            uuid.UUID(row.job_id),
            row.owner,
            row.process_id,
            uuid.UUID(row.deployment_id),
            json.dumps(row.body),
            row.created,
        )
        self.wake.set()

    async def get(self, owner: str, job_id: str) -> OutboxRow | None:
        if _uuid(job_id) is None:
            return None
        found = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM oapip_outbox WHERE job_id = $1 AND owner = $2",
            uuid.UUID(job_id),
            owner,
        )
        return _row(tuple(found)) if found else None

    async def list(self, owner: str) -> list[OutboxRow]:
        found = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM oapip_outbox WHERE owner = $1 ORDER BY created DESC", owner
        )
        return [_row(tuple(r)) for r in found]

    async def remove(self, owner: str, job_id: str) -> OutboxRow | None:
        # Waits while a drainer holds the row; once its run exists, the row is gone.
        if _uuid(job_id) is None:
            return None
        found = await self.pool.fetchrow(
            f"DELETE FROM oapip_outbox WHERE job_id = $1 AND owner = $2 RETURNING {_COLUMNS}",
            uuid.UUID(job_id),
            owner,
        )
        return _row(tuple(found)) if found else None

    @contextlib.asynccontextmanager
    async def claim(self, limit: int = BULK_LIMIT) -> AsyncIterator[Claim]:
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetch(
                f"SELECT {_COLUMNS} FROM oapip_outbox WHERE error IS NULL ORDER BY created"
                " LIMIT $1 FOR UPDATE SKIP LOCKED",
                limit,
            )
            claim = Claim([_row(tuple(r)) for r in found])
            yield claim
            if claim.done_ids:
                await conn.execute(
                    "DELETE FROM oapip_outbox WHERE job_id = ANY($1::uuid[])",
                    [uuid.UUID(i) for i in claim.done_ids],
                )
            for job_id, error in claim.failed.items():
                await conn.execute(
                    "UPDATE oapip_outbox SET error = $1 WHERE job_id = $2",
                    error,
                    uuid.UUID(job_id),
                )

    async def close(self) -> None:
        await self.pool.close()


async def open_outbox(home: Path, database_url: str | None) -> Outbox:
    """The outbox in Prefect's PostgreSQL database (``database_url``), else the SQLite
    file ``<home>/outbox.db``."""
    if database_url and database_url.startswith("postgresql"):
        return await PostgresOutbox.connect(database_url)
    return SqliteOutbox(home / "outbox.db")
