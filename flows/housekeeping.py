"""The housekeeping flow: finished jobs expire on the retention policy.

A Prefect deployment of its own (``oapip-housekeeping/housekeeping``) with an interval
schedule of ``OAPIP_HOUSEKEEPING_INTERVAL_S``, served by ``python -m flows.housekeeping``
(the embedded stack always starts it: a process may have a retention of its own when
the site has none): the deployment, its schedule and every run with its logs show in the
Prefect UI, and a run can be started there by hand.

A job keeps its results for its own retention (its process's ``jobRetentionDays``, a tag
of its run) or else the site's ``OAPIP_JOB_RETENTION_DAYS`` (``core.retention``). Each
run, for the engine's jobs that ended before the earliest limit any job can have (the
shortest of the site's retention and those of the deployed processes), skipping those
whose own time has not come:

* a successful job whose results are as old as its retention loses them (in every store
  it may have used, ``blocks.result_stores``) and its run is tagged ``results-expired``:
  the gateway answers its results with 410 Gone (from their expiry time on, already);
* with ``OAPIP_JOB_PURGE_DAYS``, a job whose results expired that long ago is deleted
  (artifacts, flow run, and so its logs): it is then 404, as after a DELETE.

With no retention anywhere a run reads one page of deployments and ends. A job whose
process had a shorter retention than any deployed now (replaced, or undeployed) is found
once the shortest retention in force reaches it; the gateway answers its results 410
from its own expiry time on meanwhile.

Jobs are read a page at a time, newest first, by their end time (a keyset: a page costs
the same however much history lies before it) and each page is handled before the next
is read. Purging goes first: the results a purged job still has are removed, its
artifacts deleted, then its runs with Prefect's ``bulk_delete`` (50 a call; the server
deletes their logs behind). Expiring removes a page's results with one look-up of the
stores per user and S3 deletes of up to 1000 keys a call, then tags each run (Prefect
has no bulk update of tags: one PATCH a run).

Housekeeping is background work and keeps to a pace (:class:`_Pace`): one call at a
time, and after each a rest in proportion to the time it took, so that a run works
``OAPIP_HOUSEKEEPING_DUTY`` of its time and leaves the rest of the Prefect server, the
database and the cores to the gateway's submissions and the jobs; on a loaded server
its calls take longer, and so do its rests. The deployment runs one run at a time
(a deployment concurrency limit of 1): a run due while another still runs, by the
schedule or by hand, is cancelled ("Deployment concurrency limit reached"), and the
next one picks up whatever the long one left.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from prefect import flow, get_run_logger
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterTags,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
    FlowRun,
    StateType,
)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound

from blocks.result_stores import remove_results_of_jobs
from core.exceptions import StagingError
from core.naming import (
    EXPIRED_TAG,
    HOUSEKEEPING_FLOW,
    OWN_RETENTION_TAG,
    TAG,
    job_id_of,
    retention_of,
    user_of,
)
from core.retention import DAY_S, expires_at, purge_at, retention_s
from core.settings import RetentionSettings, Settings, get_settings

__all__ = ["DEPLOYMENT", "housekeeping", "serve"]

DEPLOYMENT = "housekeeping"
"""Name of the housekeeping flow's deployment."""
_PAGE = 200  # flow runs read per call
_BULK = 50  # flow runs deleted per call (Prefect's BULK_OPERATION_LIMIT)
# The longest rest after a call, seconds: calls take milliseconds to a second; one held
# up far longer (the server restarting, the process stopped) earns no minutes of rest.
_MAX_REST_S = 5.0
T = TypeVar("T")
_FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]


def _jobs_filter(states: list[StateType], *, after: dt.datetime | None = None) -> FlowRunFilter:
    """The engine's runs (tagged ``oapip``) in one of ``states`` that ended at or after
    ``after``."""
    return FlowRunFilter(
        tags=FlowRunFilterTags(all_=[TAG]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
        end_time=FlowRunFilterEndTime(after_=after),
    )


async def _pages(
    client: PrefectClient, jobs: FlowRunFilter, before: dt.datetime
) -> AsyncIterator[list[FlowRun]]:
    """The jobs of ``jobs`` that ended at or before ``before``, newest first, a page at a
    time: each page is read below the end time of the last one (the runs that ended at
    exactly that time and were read already are left out by id), so what the caller
    does to a page (deleting or tagging its runs) does not move the next one."""
    cursor = before
    read_at_cursor: list[uuid.UUID] = []
    while True:
        page_filter = jobs.model_copy(
            update={
                "end_time": FlowRunFilterEndTime(before_=cursor, after_=jobs.end_time.after_),
                "id": FlowRunFilterId(not_any_=read_at_cursor) if read_at_cursor else None,
            }
        )
        page = await client.read_flow_runs(
            flow_run_filter=page_filter, sort=FlowRunSort.END_TIME_DESC, limit=_PAGE
        )
        jobs_only = [r for r in page if user_of(r.tags) is not None]
        if jobs_only:
            yield jobs_only
        if len(page) < _PAGE:
            return
        last = page[-1].end_time
        at_last = [r.id for r in page if r.end_time == last]
        read_at_cursor = [*read_at_cursor, *at_last] if last == cursor else at_last
        cursor = last


async def _process_retentions(client: PrefectClient) -> list[float]:
    """The retentions (seconds) of the processes deployed with their own, a page of
    deployments at a time (only theirs: tagged ``own-retention``)."""
    own = DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG, OWN_RETENTION_TAG]))
    found: list[float] = []
    offset = 0
    while True:
        page = await client.read_deployments(deployment_filter=own, limit=_PAGE, offset=offset)
        found.extend(s for d in page if (s := retention_of(d.tags)) is not None)
        if len(page) < _PAGE:
            return found
        offset += len(page)


def _due(
    run: FlowRun,
    at: Callable[[dt.datetime | None, RetentionSettings, float | None], dt.datetime | None],
    policy: RetentionSettings,
    now: dt.datetime,
) -> bool:
    """Whether ``run``'s time by ``at`` (``expires_at`` or ``purge_at``, with its own
    retention) has come at ``now``."""
    when = at(run.end_time, policy, retention_of(run.tags or []))
    return when is not None and when <= now


def _has_results(run: FlowRun) -> bool:
    """Whether ``run`` may still hold results in a store (successful, not expired)."""
    return bool(run.state and run.state.type == StateType.COMPLETED) and EXPIRED_TAG not in (
        run.tags or []
    )


class _Pace:
    """A duty cycle: each call is awaited alone, then followed by a rest of
    ``(1 - duty) / duty`` times the seconds it took (at most ``_MAX_REST_S``), so that a
    run works ``duty`` of its time at most, whatever the machine; the more loaded the
    server, the longer its calls, and the longer the rests."""

    def __init__(self, duty: float) -> None:
        self._rest_per_s = (1.0 - duty) / duty
        self.worked_s = 0.0  # seconds in calls, so far
        self.rested_s = 0.0  # seconds rested, so far

    async def __call__(self, work: Awaitable[T]) -> T:
        """The result of ``work``, once it is done and the rest it earned is over."""
        started = time.monotonic()
        result = await work
        took = time.monotonic() - started
        rest = min(took * self._rest_per_s, _MAX_REST_S)
        self.worked_s += took
        self.rested_s += rest
        await asyncio.sleep(rest)
        return result


async def _remove_results(settings: Settings, pace: _Pace, runs: list[FlowRun]) -> list[FlowRun]:
    """Remove the results of ``runs``, per user at once; the runs whose results are gone
    (a user's runs whose store could not be reached are left for the next run)."""
    by_user: dict[str | None, list[FlowRun]] = defaultdict(list)
    for run in runs:
        by_user[user_of(run.tags)].append(run)
    done: list[FlowRun] = []
    for user, theirs in by_user.items():
        try:
            await pace(
                asyncio.to_thread(
                    remove_results_of_jobs,
                    settings,
                    user=user,
                    job_ids=[job_id_of(r.tags, r.id) for r in theirs],
                )
            )
        except StagingError as exc:
            get_run_logger().warning(
                "%d jobs of %s keep their results for now: %s", len(theirs), user, exc.detail
            )
            continue
        done.extend(theirs)
    return done


async def _each(pace: _Pace, items: list[T], call: Callable[[T], Awaitable[Any]]) -> None:
    """``call`` each of ``items``, one after another, at ``pace``."""
    for item in items:
        await pace(call(item))


async def _delete_artifacts(client: PrefectClient, pace: _Pace, runs: list[FlowRun]) -> None:
    """Delete the artifacts of ``runs`` (Prefect keeps them when a run is deleted and has
    no bulk delete of artifacts: one read of them per batch, then one DELETE each)."""
    of_runs = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in runs]))

    async def delete(artifact_id: uuid.UUID) -> None:
        with contextlib.suppress(ObjectNotFound):  # gone meanwhile, by a user's DELETE
            await client.delete_artifact(artifact_id)

    while artifacts := await pace(client.read_artifacts(artifact_filter=of_runs, limit=_PAGE)):
        await _each(pace, [a.id for a in artifacts], delete)


async def _purge(
    client: PrefectClient, settings: Settings, pace: _Pace, page: list[FlowRun]
) -> int:
    """Delete the runs of ``page``, ``_BULK`` a call (after the results any of them still
    has, and their artifacts), at ``pace``; how many were deleted."""
    purged = 0
    for start in range(0, len(page), _BULK):
        batch = page[start : start + _BULK]
        with_results = [r for r in batch if _has_results(r)]
        kept = {r.id for r in with_results} - {
            r.id for r in await _remove_results(settings, pace, with_results)
        }
        batch = [r for r in batch if r.id not in kept]
        if not batch:
            continue
        await _delete_artifacts(client, pace, batch)
        response = await pace(
            client.request(
                "POST",
                "/flow_runs/bulk_delete",
                json={
                    "flow_runs": {"id": {"any_": [str(r.id) for r in batch]}},
                    "limit": len(batch),
                },
            )
        )
        purged += len(response.json()["deleted"])
    return purged


async def _expire(
    client: PrefectClient, settings: Settings, pace: _Pace, page: list[FlowRun]
) -> int:
    """Remove the results of the runs of ``page`` that still have them and tag those
    runs expired, at ``pace``; how many were."""
    done = await _remove_results(settings, pace, [r for r in page if _has_results(r)])

    async def tag(run: FlowRun) -> None:
        await client.update_flow_run(run.id, tags=[*run.tags, EXPIRED_TAG])

    await _each(pace, done, tag)
    return len(done)


@flow(name=HOUSEKEEPING_FLOW, persist_result=False, log_prints=False)
async def housekeeping(as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Expire (and purge) the jobs the retention policy is done with.

    Args:
        as_of: the time the policy is applied at (default: now); a job expires when its
            results are as old as its retention at that time (its process's
            ``jobRetentionDays``, else ``OAPIP_JOB_RETENTION_DAYS``).

    Returns:
        How many jobs were read (those that ended early enough to be due to be purged,
        or, successful, to expire: due or not, expired before or not), expired and
        purged.
    """
    settings = get_settings()
    policy = settings.retention
    now = as_of or dt.datetime.now(dt.UTC)
    log = get_run_logger()
    counts = {"read": 0, "expired": 0, "purged": 0}
    pace = _Pace(policy.housekeeping_duty)
    async with get_client() as client:
        # A process's own retention is at most the site's, when the site has one.
        own = [retention_s(policy, s) for s in await _process_retentions(client)]
        in_force = [s for s in (retention_s(policy), *own) if s is not None]
        if not in_force:
            log.info(
                "no retention is set (OAPIP_JOB_RETENTION_DAYS, or a process's "
                "jobRetentionDays): every job keeps its results"
            )
            return counts
        purge_s = (policy.purge_days or 0) * DAY_S
        # Ended before: some jobs' results expired (those with the shortest retention).
        limit = now - dt.timedelta(seconds=min(in_force))
        purge_limit = limit - dt.timedelta(seconds=purge_s)
        if policy.purge_days is not None:
            async for page in _pages(client, _jobs_filter(_FINAL), purge_limit):
                counts["read"] += len(page)
                due = [r for r in page if _due(r, purge_at, policy, now)]
                counts["purged"] += await _purge(client, settings, pace, due)
        # Jobs that ended before the longest retention's purge limit were just deleted
        # (or kept for a store that could not be reached: the next run tries them again,
        # first).
        after = None
        if policy.purge_days is not None:
            after = now - dt.timedelta(seconds=max(in_force) + purge_s)
        successful = _jobs_filter([StateType.COMPLETED], after=after)  # the rest have none
        async for page in _pages(client, successful, limit):
            counts["read"] += len(page)
            due = [r for r in page if _due(r, expires_at, policy, now)]
            counts["expired"] += await _expire(client, settings, pace, due)
    log.info(
        "%d jobs read (ended before %s): %d expired now, %d purged",
        counts["read"],
        limit.isoformat(),
        counts["expired"],
        counts["purged"],
    )
    log.info(
        "%.0f s in calls, %.0f s resting between them (OAPIP_HOUSEKEEPING_DUTY %g)",
        pace.worked_s,
        pace.rested_s,
        policy.housekeeping_duty,
    )
    return counts


def serve(settings: Settings | None = None) -> None:
    """Create the housekeeping deployment with its schedule and run its runs (blocks).

    One run at a time, however many serve it: the deployment's concurrency limit of 1
    (Prefect's, held from Pending to the run's end, a lease its engine renews) cancels a
    run that comes due while another runs, rather than queueing it behind.
    """
    from prefect.deployments.runner import EntrypointType

    settings = settings or get_settings()
    housekeeping.serve(
        name=DEPLOYMENT,
        interval=dt.timedelta(seconds=settings.retention.housekeeping_interval_s),
        global_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        description="Expires finished OGC jobs on the retention policy "
        "(OAPIP_JOB_RETENTION_DAYS) and purges their records (OAPIP_JOB_PURGE_DAYS).",
        tags=["oapip-housekeeping"],
        entrypoint_type=EntrypointType.MODULE_PATH,
        print_starting_message=False,
    )


if __name__ == "__main__":
    serve()
