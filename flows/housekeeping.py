"""The housekeeping flow: finished jobs expire on the site's retention policy.

A Prefect deployment of its own (``oapip-housekeeping/housekeeping``) with an interval
schedule of ``OAPIP_HOUSEKEEPING_INTERVAL_S``, served by ``python -m flows.housekeeping``
(the embedded stack starts it when ``OAPIP_JOB_RETENTION_DAYS`` is set): the deployment,
its schedule and every run with its logs show in the Prefect UI, and a run can be
started there by hand.

Each run, for the engine's jobs that ended before the policy's limit:

* a successful job whose results are ``OAPIP_JOB_RETENTION_DAYS`` old loses them (in
  every store it may have used, ``blocks.result_stores``) and its run is tagged
  ``results-expired``: the gateway answers its results with 410 Gone;
* with ``OAPIP_JOB_PURGE_DAYS``, a job whose results expired that long ago is deleted
  (artifacts, flow run, and so its logs): it is then 404, as after a DELETE.

Jobs are read a page at a time and handled a few at once (``_AT_ONCE``), so that a large
backlog does not crowd out the gateway's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound

from blocks.result_stores import remove_job_results
from core.exceptions import StagingError
from core.naming import EXPIRED_TAG, HOUSEKEEPING_FLOW, TAG, job_id_of, user_of
from core.retention import purge_at
from core.settings import Settings, get_settings

__all__ = ["DEPLOYMENT", "housekeeping", "serve"]

DEPLOYMENT = "housekeeping"
"""Name of the housekeeping flow's deployment."""
_PAGE = 200  # flow runs read per call
_AT_ONCE = 4  # jobs expired or purged at once
_FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]


async def _ended_jobs(client: PrefectClient, before: dt.datetime) -> list[FlowRun]:
    """Every job (a run tagged ``oapip`` with a user) that ended before ``before``."""
    runs: list[FlowRun] = []
    flow_run_filter = FlowRunFilter(
        tags=FlowRunFilterTags(all_=[TAG]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_FINAL)),
        end_time=FlowRunFilterEndTime(before_=before),
    )
    while True:
        page = await client.read_flow_runs(
            flow_run_filter=flow_run_filter,
            sort=FlowRunSort.END_TIME_DESC,
            limit=_PAGE,
            offset=len(runs),
        )
        runs.extend(page)
        if len(page) < _PAGE:
            return [r for r in runs if user_of(r.tags) is not None]


async def _expire(client: PrefectClient, settings: Settings, run: FlowRun) -> bool:
    """Remove ``run``'s results and tag it expired; False when a store could not be
    reached (the job is tried again by the next run)."""
    try:
        await asyncio.to_thread(
            remove_job_results, settings, user=user_of(run.tags), job_id=job_id_of(run.tags, run.id)
        )
    except StagingError as exc:
        get_run_logger().warning("job %s keeps its results for now: %s", run.id, exc.detail)
        return False
    await client.update_flow_run(run.id, tags=[*run.tags, EXPIRED_TAG])
    return True


async def _purge(client: PrefectClient, run: FlowRun) -> None:
    """Delete ``run``'s artifacts and the run itself (Prefect then deletes its logs)."""
    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
    )
    with contextlib.suppress(ObjectNotFound):  # deleted meanwhile, by a user's DELETE
        for artifact in artifacts:
            await client.delete_artifact(artifact.id)
        await client.delete_flow_run(run.id)


@flow(name=HOUSEKEEPING_FLOW, persist_result=False, log_prints=False)
async def housekeeping(as_of: dt.datetime | None = None) -> dict[str, Any]:
    """Expire (and purge) the jobs the retention policy is done with.

    Args:
        as_of: the time the policy is applied at (default: now); a job expires when its
            results are ``OAPIP_JOB_RETENTION_DAYS`` old at that time.

    Returns:
        How many jobs were looked at, expired and purged.
    """
    settings = get_settings()
    policy = settings.retention
    now = as_of or dt.datetime.now(dt.UTC)
    log = get_run_logger()
    counts = {"ended": 0, "expired": 0, "purged": 0}
    if policy.retention_days is None:
        log.info("OAPIP_JOB_RETENTION_DAYS is not set: every job keeps its results")
        return counts
    limit = now - dt.timedelta(days=policy.retention_days)  # ended before: results expired
    gate = asyncio.Semaphore(_AT_ONCE)

    async def handle(client: PrefectClient, run: FlowRun) -> None:
        async with gate:
            purge = purge_at(run.end_time, policy)
            if purge is not None and purge <= now:
                await _purge(client, run)
                counts["purged"] += 1
            elif (
                run.state
                and run.state.type == StateType.COMPLETED
                and EXPIRED_TAG not in run.tags
                and await _expire(client, settings, run)
            ):
                counts["expired"] += 1

    async with get_client() as client:
        runs = await _ended_jobs(client, limit)
        counts["ended"] = len(runs)
        await asyncio.gather(*(handle(client, run) for run in runs))
    log.info(
        "%d jobs ended before %s: %d expired now, %d purged",
        counts["ended"],
        limit.isoformat(),
        counts["expired"],
        counts["purged"],
    )
    return counts


def serve(settings: Settings | None = None) -> None:
    """Create the housekeeping deployment with its schedule and run its runs (blocks)."""
    from prefect.deployments.runner import EntrypointType

    settings = settings or get_settings()
    housekeeping.serve(
        name=DEPLOYMENT,
        interval=dt.timedelta(seconds=settings.retention.housekeeping_interval_s),
        description="Expires finished OGC jobs on the retention policy "
        "(OAPIP_JOB_RETENTION_DAYS) and purges their records (OAPIP_JOB_PURGE_DAYS).",
        tags=["oapip-housekeeping"],
        entrypoint_type=EntrypointType.MODULE_PATH,
        print_starting_message=False,
    )


if __name__ == "__main__":
    serve()
