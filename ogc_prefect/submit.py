"""Submitting jobs through the outbox, finding a job's run by its jobID, and the drainer.

A job submitted through the OGC API has a jobID the gateway makes; it is the flow run's
idempotency key and its tag ``job:<jobID>`` (the Prefect UI shows it), never its id. Until
the drainer has created the run, the job is a row of the outbox (:mod:`ogc_prefect.outbox`)
and reads ``accepted`` (or ``failed``, when Prefect refused its run for good).

The drainer runs in the gateway process, one per gateway (docs/architecture.md §3 says
why): woken by every submit and every second, it claims up to 100 rows, creates their runs
with one ``POST /deployments/{id}/create_flow_run/bulk`` per deployment, and removes the
rows whose run Prefect holds. Prefect answers a replayed key with the run it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterId,
    FlowRunFilter,
    FlowRunFilterIdempotencyKey,
)
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound

from core.naming import job_tag, job_tags
from ogc_prefect.client import PrefectApi
from ogc_prefect.mapping import JobFilters, JobRecord, ProcessRecord
from ogc_prefect.outbox import BULK_LIMIT, Claim, Outbox, OutboxRow, open_outbox
from ogc_prefect.rest import RETRY_CODES

__all__ = ["Drainer", "find_run", "list_with_outbox", "outbox_record", "running_outbox", "submit"]

logger = logging.getLogger("oapip.drainer")

_POLL_S = 1.0  # how often a drainer looks for rows it was not woken for (another replica's)
_AGAIN_FIRST_S = 0.02  # first wait before rows Prefect did not create are tried again
_UNDEPLOYED = "the process was undeployed before the job started"
# What a run refused for good says (Prefect's bulk answer); other refusals are tried again.
_FOR_GOOD = ("validation", "schema", "job variables", "work queue")


async def submit(
    api: PrefectApi,
    outbox: Outbox,
    user: str,
    process: ProcessRecord,
    parameters: dict[str, Any],
    extra_tags: list[str] | None = None,
) -> JobRecord:
    """Write ``user``'s job of ``process`` to the outbox; its first status (``accepted``).
    ``extra_tags``: more tags of its flow run (how its results are asked for)."""
    job_id = str(uuid.uuid4())
    body = {
        "parameters": parameters,
        "tags": [*job_tags(user, process.process_id), job_tag(job_id), *(extra_tags or [])],
        "name": process.process_id,
        "idempotency_key": job_id,
    }
    row = OutboxRow(
        job_id=job_id,
        owner=user,
        process_id=process.process_id,
        deployment_id=str(process.deployment_id),
        body=body,
        created=dt.datetime.now(dt.UTC),
    )
    await outbox.put(row)
    return outbox_record(row)


def outbox_record(row: OutboxRow) -> JobRecord:
    """The status of a job still in the outbox: ``accepted``, or ``failed`` with the
    reason Prefect refused its run."""
    return JobRecord(
        job_id=row.job_id,
        process_id=row.process_id,
        status="failed" if row.error else "accepted",
        message=row.error or "job accepted",
        created=row.created,
        started=None,
        finished=row.created if row.error else None,
        updated=row.created,
        progress=0,
        run_id="",
    )


async def find_run(api: PrefectApi, job_id: str) -> FlowRun | None:
    """The flow run of ``job_id``: the run whose idempotency key it is (the flow id in
    the filter lets Prefect's ``(flow_id, idempotency_key)`` index serve it), else the run
    whose id it is when that run has no jobID of its own (a scheduled or UI run)."""
    try:
        run_id = uuid.UUID(job_id)
    except ValueError:
        return None
    flow_id = await api.flow_id()
    found = await api.call(
        api.client.read_flow_runs,
        flow_filter=FlowFilter(id=FlowFilterId(any_=[flow_id])),
        flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[str(run_id)])
        ),
        limit=1,
    )
    if found:
        return found[0]
    try:
        flow_run = await api.call(api.client.read_flow_run, run_id)
    except ObjectNotFound:
        return None
    if any(t.startswith("job:") for t in flow_run.tags):
        return None  # an outbox job is known by its jobID only
    return flow_run


class Drainer:
    """Creates the flow runs of the outbox's rows (see the module docstring)."""

    def __init__(self, api: PrefectApi, outbox: Outbox, *, poll_s: float = _POLL_S) -> None:
        self.api = api
        self.outbox = outbox
        self.poll_s = poll_s
        self.left = False  # the last drain left rows Prefect did not create this time

    async def run(self) -> None:
        """Drain until cancelled; a failure is logged and the rows tried again. Rows
        Prefect did not create this time (SQLite answers "database is locked" to a bulk
        create that meets another writer) are tried again within tens of milliseconds,
        not at the next poll."""
        delay = self.poll_s
        again = _AGAIN_FIRST_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.wake.wait(), delay)
            self.outbox.wake.clear()
            try:
                self.left = False
                while await self.drain_once():
                    pass
                if self.left:
                    delay, again = again, min(again * 2, self.poll_s)
                else:
                    delay, again = self.poll_s, _AGAIN_FIRST_S
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not create the runs of waiting jobs; trying again")
                delay = min(delay * 2, 30.0)

    async def drain_once(self, limit: int = BULK_LIMIT) -> int:
        """Create the runs of up to ``limit`` waiting jobs; how many were settled."""
        async with self.outbox.claim(limit) as claim:
            groups: dict[str, list[OutboxRow]] = defaultdict(list)
            for row in claim.rows:
                groups[row.deployment_id].append(row)
            for deployment_id, rows in groups.items():
                await self._create(deployment_id, rows, claim)
            return len(claim.done_ids) + len(claim.failed)

    async def _create(self, deployment_id: str, rows: list[OutboxRow], claim: Claim) -> None:
        try:
            async with self.api.writes:
                response = await self.api.rest.post(
                    f"deployments/{deployment_id}/create_flow_run/bulk",
                    [row.body for row in rows],  # type: ignore[arg-type]
                )
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            if code in RETRY_CODES or code >= 500:
                raise
            error = _UNDEPLOYED if code == 404 else f"Prefect refused the job: {exc}"
            for row in rows:
                self.api.processes.pop((row.owner, row.process_id), None)
                claim.fail(row.job_id, error)
            return
        for row, result in zip(rows, response.json()["results"], strict=True):
            if result["status"] == "CREATED":
                claim.done(row.job_id)
                self.api.log_later(
                    uuid.UUID(result["flow_run_id"]),
                    f"job {row.job_id} created through the OGC API by user {row.owner!r} "
                    f"for process {row.process_id!r}"
                    + (" with callbacks" if "subscriber" in row.body["parameters"] else ""),
                )
            elif any(word in (error := str(result.get("error"))).lower() for word in _FOR_GOOD):
                claim.fail(row.job_id, f"Prefect refused the job: {error}")
            else:
                self.left = True
                logger.info("Prefect did not create job %s (%s); trying again", row.job_id, error)


def _listed(row: OutboxRow, filters: JobFilters) -> bool:
    record = outbox_record(row)
    return (
        (not filters.process_ids or row.process_id in filters.process_ids)
        and (not filters.statuses or record.status in filters.statuses)
        and (filters.created_after is None or row.created >= filters.created_after)
        and (filters.created_before is None or row.created <= filters.created_before)
        and filters.min_duration_s is None
        and filters.max_duration_s is None
    )


async def list_with_outbox(
    outbox: Outbox | None,
    user: str,
    filters: JobFilters,
    list_runs: Callable[[str, JobFilters], Awaitable[tuple[list[JobRecord], bool]]],
) -> tuple[list[JobRecord], bool]:
    """A page of ``user``'s jobs, newest first: those still in the outbox (newer than any
    run), then those ``list_runs`` reads from Prefect; and whether more follow."""
    waiting = (
        [outbox_record(r) for r in await outbox.list(user) if _listed(r, filters)] if outbox else []
    )
    if not waiting:
        return await list_runs(user, filters)
    head = waiting[filters.offset : filters.offset + filters.limit]
    rest = filters.limit - len(head)
    offset = max(0, filters.offset - len(waiting))
    runs, more = await list_runs(user, replace(filters, offset=offset, limit=max(rest, 1)))
    if rest == 0:
        more = bool(runs) or filters.offset + filters.limit < len(waiting)
        runs = []
    ids = {r.job_id for r in head}
    # A run created while the page was read can show twice: once is enough.
    return head + [r for r in runs if r.job_id not in ids], more


@contextlib.asynccontextmanager
async def running_outbox(api: PrefectApi) -> AsyncIterator[None]:
    """Open the outbox the settings name and run its drainer while the gateway runs
    (nothing when ``OAPIP_OUTBOX`` is false)."""
    settings = api.settings
    if not settings.gateway.outbox:
        yield
        return
    outbox = await open_outbox(settings.home, settings.gateway.outbox_database_url)
    api.outbox = outbox
    task = asyncio.create_task(Drainer(api, outbox).run(), name="outbox drainer")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        api.outbox = None
        await outbox.close()
