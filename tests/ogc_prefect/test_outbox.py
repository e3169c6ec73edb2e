"""The job outbox's stores: SQLite (the embedded default) and PostgreSQL (Prefect's own
database), the same contract; and the page of /jobs that mixes waiting jobs with runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ogc_prefect.mapping import JobFilters, JobRecord
from ogc_prefect.outbox import Outbox, OutboxRow, PostgresOutbox, SqliteOutbox
from ogc_prefect.submit import list_with_outbox, outbox_record
from tests.conftest import POSTGRES_DSN

pytestmark = pytest.mark.anyio

PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _row(owner: str = "alice", seconds: float = 0.0, process_id: str = "echo") -> OutboxRow:
    job_id = str(uuid.uuid4())
    return OutboxRow(
        job_id=job_id,
        owner=owner,
        process_id=process_id,
        deployment_id=str(uuid.uuid4()),
        body={"parameters": {"inputs": {}}, "idempotency_key": job_id},
        created=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds),
    )


@pytest.fixture
async def sqlite_outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    outbox = SqliteOutbox(tmp_path / "outbox.db")
    yield outbox
    await outbox.close()


@pytest.fixture
async def postgres_outbox() -> AsyncIterator[Outbox]:
    database = f"oapip_outbox_{uuid.uuid4().hex[:10]}"
    created = subprocess.run([*PSQL, f"CREATE DATABASE {database}"], capture_output=True, text=True)
    if created.returncode != 0:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is needed: {created.stderr.strip()}")
    outbox = await PostgresOutbox.connect(POSTGRES_DSN.format(name=database))
    try:
        yield outbox
    finally:
        await outbox.close()
        subprocess.run([*PSQL, f"DROP DATABASE {database} WITH (FORCE)"], capture_output=True)


@pytest.fixture(params=["sqlite", "postgres"])
def outbox(request: pytest.FixtureRequest) -> Outbox:
    return request.getfixturevalue(f"{request.param}_outbox")


async def test_a_put_job_is_read_back_by_its_owner_only(outbox: Outbox):
    row = _row()
    await outbox.put(row)
    assert outbox.wake.is_set()
    assert await outbox.get("alice", row.job_id) == row
    assert await outbox.get("bob", row.job_id) is None
    assert await outbox.get("alice", "not-a-uuid") is None
    assert await outbox.remove("alice", "not-a-uuid") is None
    assert [r.job_id for r in await outbox.list("alice")] == [row.job_id]
    assert await outbox.list("bob") == []


async def test_list_is_newest_first(outbox: Outbox):
    rows = [_row(seconds=s) for s in (1, 3, 2)]
    for row in rows:
        await outbox.put(row)
    assert [r.created.second for r in await outbox.list("alice")] == [3, 2, 1]


async def test_a_claim_settles_rows_oldest_first(outbox: Outbox):
    rows = [_row(seconds=s) for s in range(5)]
    for row in rows:
        await outbox.put(row)
    async with outbox.claim(3) as claim:
        assert [r.job_id for r in claim.rows] == [r.job_id for r in rows[:3]]
        claim.done(rows[0].job_id)
        claim.fail(rows[1].job_id, "the process was undeployed")
    assert await outbox.get("alice", rows[0].job_id) is None
    failed = await outbox.get("alice", rows[1].job_id)
    assert failed is not None and failed.error == "the process was undeployed"
    assert outbox_record(failed).status == "failed"
    # The unsettled row is claimed again; the failed one never.
    async with outbox.claim() as claim:
        assert [r.job_id for r in claim.rows] == [r.job_id for r in rows[2:]]


async def test_a_failed_drain_leaves_every_row(outbox: Outbox):
    row = _row()
    await outbox.put(row)
    with pytest.raises(RuntimeError):
        async with outbox.claim() as claim:
            claim.done(row.job_id)
            raise RuntimeError("Prefect went away")
    assert await outbox.get("alice", row.job_id) == row


async def test_dismissed_before_its_run_exists(outbox: Outbox):
    row = _row()
    await outbox.put(row)
    assert await outbox.remove("bob", row.job_id) is None
    assert await outbox.remove("alice", row.job_id) == row
    assert await outbox.get("alice", row.job_id) is None
    async with outbox.claim() as claim:
        assert claim.rows == []


async def test_postgres_claims_skip_rows_another_replica_holds(postgres_outbox: Outbox):
    rows = [_row(seconds=s) for s in range(4)]
    for row in rows:
        await postgres_outbox.put(row)
    async with postgres_outbox.claim(2) as first:
        async with postgres_outbox.claim(10) as second:
            assert {r.job_id for r in first.rows} == {r.job_id for r in rows[:2]}
            assert {r.job_id for r in second.rows} == {r.job_id for r in rows[2:]}
            for r in second.rows:
                second.done(r.job_id)
        # A dismissal waits for the claim that holds its row.
        removing = asyncio.create_task(postgres_outbox.remove("alice", rows[0].job_id))
        await asyncio.sleep(0.3)
        assert not removing.done()
        first.done(rows[0].job_id)
    assert await removing is None  # its run exists: the job is dismissed in Prefect
    assert [r.job_id for r in await postgres_outbox.list("alice")] == [rows[1].job_id]


def _run(job_id: str) -> JobRecord:
    return JobRecord(job_id, "echo", "successful", "", None, None, None, None, 100)


@pytest.mark.parametrize(
    ("offset", "limit", "expected", "more"),
    [
        (0, 2, ["w0", "w1"], True),
        (0, 4, ["w0", "w1", "w2", "r0"], True),
        (2, 3, ["w2", "r0", "r1"], True),
        (3, 2, ["r0", "r1"], True),
        (4, 10, ["r1", "r2", "r3"], False),
    ],
)
async def test_jobs_list_waiting_jobs_before_runs(
    sqlite_outbox: Outbox, offset: int, limit: int, expected: list[str], more: bool
):
    waiting = [_row(seconds=-s) for s in range(3)]  # w0 is the newest
    for row in waiting:
        await sqlite_outbox.put(row)
    names = {row.job_id: f"w{i}" for i, row in enumerate(waiting)}
    runs = [_run(f"r{i}") for i in range(4)]

    async def list_runs(user: str, filters: JobFilters) -> tuple[list[JobRecord], bool]:
        page = runs[filters.offset : filters.offset + filters.limit]
        return page, filters.offset + filters.limit < len(runs)

    records, has_more = await list_with_outbox(
        sqlite_outbox, "alice", JobFilters(limit=limit, offset=offset), list_runs
    )
    assert [names.get(r.job_id, r.job_id) for r in records] == expected
    assert has_more is more
    assert all(r.status == "accepted" and r.run_id == "" for r in records if r.job_id in names)
