"""A job's end of life, as the gateway sees it: deleting a finished job, and the
retention policy's marks on a job's status and results.

Deleting (``DELETE`` of a finished job) removes its results from every store it may
have used (``blocks.result_stores``), its artifacts, and its flow run, whose logs the
Prefect server then deletes: afterwards the job is 404 everywhere. The housekeeping flow
(``flows.housekeeping``) expires jobs past their retention (their process's
``jobRetentionDays``, else ``OAPIP_JOB_RETENTION_DAYS``: ``core.retention``): it removes
their results and tags their runs ``results-expired``. :func:`with_expiry` adds when
results expire to a job's status; :func:`check_results_kept` answers ``410 Gone`` on the
results from that time on, whether housekeeping has removed them yet or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt

from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound

from blocks.result_stores import remove_job_results
from core.exceptions import ResultsExpired, ServiceUnavailable, StagingError
from core.naming import EXPIRED_TAG, job_id_of, retention_of, user_of
from core.retention import expires_at
from core.settings import RetentionSettings
from core.times import format_time
from ogc_prefect.client import PrefectApi
from ogc_prefect.mapping import JobRecord

__all__ = ["check_results_kept", "delete_job", "with_expiry"]


async def delete_job(api: PrefectApi, flow_run: FlowRun) -> None:
    """Remove a finished job: its results in every store, its artifacts, its flow run
    (and so its logs). Results go first: a store that cannot be reached leaves the job
    in place (``ServiceUnavailable``), to be deleted again later, rather than orphaned
    objects that nothing points at."""
    try:
        await asyncio.to_thread(
            remove_job_results,
            api.settings,
            user=user_of(flow_run.tags),
            job_id=job_id_of(flow_run.tags, flow_run.id),
        )
    except StagingError as exc:
        raise ServiceUnavailable(
            f"the job's results cannot be removed now, so the job was kept: {exc.detail}"
        ) from exc
    artifacts = await api.call(
        api.client.read_artifacts,
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])),
    )
    # Either may be gone meanwhile (a second DELETE of the same job).
    for artifact in artifacts:
        with contextlib.suppress(ObjectNotFound):
            await api.call(api.client.delete_artifact, artifact.id)
    with contextlib.suppress(ObjectNotFound):
        await api.call(api.client.delete_flow_run, flow_run.id)


def check_results_kept(flow_run: FlowRun, job_id: str, policy: RetentionSettings) -> None:
    """``ResultsExpired`` (410) when housekeeping removed the job's results, or when
    their expiry time has passed (results never outlive the ``expires`` its status
    gave, even before housekeeping's next run)."""
    tags = flow_run.tags or []
    if EXPIRED_TAG in tags:
        raise ResultsExpired(
            f"the results of job {job_id} expired under the retention policy and were "
            "removed; run the job again to compute them anew"
        )
    expires = expires_at(flow_run.end_time, policy, retention_of(tags))
    if expires is not None and expires <= dt.datetime.now(dt.UTC):
        raise ResultsExpired(
            f"the results of job {job_id} expired at {format_time(expires)} under the "
            "retention policy; run the job again to compute them anew"
        )


def with_expiry(record: JobRecord, flow_run: FlowRun, api: PrefectApi) -> JobRecord:
    """``record`` (of ``flow_run``) with when its results expire (its own retention after
    it ended, else ``OAPIP_JOB_RETENTION_DAYS``), if they do."""
    own = retention_of(flow_run.tags or [])
    expires = expires_at(record.finished, api.settings.retention, own)
    return dataclasses.replace(record, expires=expires) if expires else record
