"""Jobs: a job is a flow run of its process's deployment; the flow-run id is the job id.

Status, times, progress and results are read from the flow run, its state, its task runs,
its progress artifact and its persisted result: there is no job table of our own.
Another user's job answers exactly like a job that does not exist. The URLs a job will
fetch or call are checked by the outbound guard before its flow run exists
(:func:`check_urls`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    DeploymentFilter,
    DeploymentFilterTags,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort
from prefect.states import Cancelling

import cwlpkg as cwl
from blocks.storage import LocalResultStorage
from core import http
from core.exceptions import (
    InvalidInput,
    InvalidParameter,
    JobFailed,
    NoSuchJob,
    NoSuchProcess,
    NotFound,
    ResultNotReady,
    ServiceUnavailable,
)
from core.naming import (
    TAG,
    deployment_name,
    job_id_of,
    job_tags,
    response_of,
    response_tag,
    results_key,
    user_tag,
)
from core.settings import Settings
from ogc_prefect.client import PREFECT_PAGE, UNAVAILABLE, PrefectApi
from ogc_prefect.mapping import (
    FINAL_STATUSES,
    JobFilters,
    JobRecord,
    ProcessRecord,
    dismissed,
    duration_ok,
    execute_progress,
    job_record,
    phase_progress,
    run_parameters,
    state_types,
)
from ogc_prefect.processes import Processes
from ogc_prefect.quotas import Quotas
from ogc_prefect.rest import RETRY_CODES
from ogc_prefect.retention import check_results_kept, delete_job, with_expiry
from ogc_prefect.submit import find_run, list_with_outbox, outbox_record, submit

__all__ = ["Jobs", "check_urls"]

_PROCESS_MAX_AGE_S = 2.0  # how old a cached process may be when a job of it is submitted
_RESOLVE_TIMEOUT_S = 5.0  # a host that does not resolve by then is left to the job


async def check_urls(
    settings: Settings, description: dict[str, Any], parameters: dict[str, Any]
) -> None:
    """Refuse, before the job exists, the URLs of its ``parameters`` (input hrefs, file
    objects' locations, subscriber URIs) that the outbound guard refuses: 400 naming the
    input (``InvalidInput``) or the subscriber URI (``InvalidParameter``).

    A host that does not resolve now is left to the job, which fails naming the input
    (or warns about the callback) if it still does not then.
    """
    guard = http.Guard.from_settings(settings)

    async def refusal(url: str) -> str | None:
        try:
            await asyncio.wait_for(guard.check(url), _RESOLVE_TIMEOUT_S)
        except (http.AddressRefused, http.NotHttpUrl) as exc:
            return str(exc)
        except (http.UnknownHost, TimeoutError):
            return None
        return None

    inputs = cwl.file_urls(description, parameters["inputs"])
    subscriber = list((parameters.get("subscriber") or {}).items())
    found = await asyncio.gather(*(refusal(url) for _, url in [*inputs, *subscriber]))
    refused_inputs = {name: p for (name, _), p in zip(inputs, found, strict=False) if p}
    if refused_inputs:
        summary = "; ".join(f"{name}: {problem}" for name, problem in refused_inputs.items())
        raise InvalidInput(f"Invalid inputs: {summary}", errors=refused_inputs)
    refused_uris = [
        f"subscriber {key}: {p}"
        for (key, _), p in zip(subscriber, found[len(inputs) :], strict=True)
        if p
    ]
    if refused_uris:
        raise InvalidParameter("; ".join(refused_uris))


class Jobs:
    """Execute (submit) jobs, read, list, wait for and dismiss them, and read their results."""

    def __init__(self, api: PrefectApi, processes: Processes) -> None:
        self.api = api
        self.processes = processes

    async def execute(
        self,
        user: str,
        process_id: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any] | None,
        *,
        subscriber: dict[str, Any] | None = None,
        jobs_url: str = "",
        wait_s: float | None = None,
        response: str,
    ) -> tuple[JobRecord, dict[str, Any] | None]:
        """Validate ``inputs`` and create the job's flow run; with ``wait_s``, wait that
        many seconds at most for the job to end.

        Returns the job's status and, when it ended within ``wait_s``, its results
        (``JobFailed``, ``ResultNotReady`` when it failed or was dismissed); without
        ``wait_s``, or while it still runs, no results. ``jobs_url`` is the job list URL
        the callbacks to ``subscriber`` link to; ``response`` (``raw`` or ``document``) is
        kept with the job as its tag (``core.naming.response_tag``) for its results
        (:meth:`results_request`).
        """
        record = await self.processes.get_process(user, process_id, max_age_s=_PROCESS_MAX_AGE_S)
        parameters = run_parameters(record.description, inputs, outputs, subscriber, jobs_url)
        await check_urls(self.api.settings, record.description, parameters)
        await Quotas(self.api).check_execute(user)
        if self.api.outbox is not None:
            tags = [response_tag(response)]
            job = await submit(self.api, self.api.outbox, user, record, parameters, tags)
        else:
            job = await self._create_run(user, record, parameters, response)
        if wait_s is None:
            return job, None
        job = await self.wait(user, job.job_id, wait_s)
        if job.status not in FINAL_STATUSES:
            return job, None
        return job, await self.results(user, job.job_id)

    async def results_request(self, user: str, job_id: str) -> tuple[str, dict[str, Any]]:
        """How the execute request of ``user``'s job asked for its results: ``response``
        (``raw`` or ``document``) and its ``outputs`` selection (``{}``: all, by value).
        A job no execute request named a form for (a schedule's, the Prefect UI's, one
        from before every job was tagged) reads as ``document`` (``core.naming.response_of``)."""
        flow_run = await self.flow_run(user, job_id)
        outputs = dict((flow_run.parameters or {}).get("outputs") or {})
        return response_of(flow_run.tags or []), outputs

    async def _create_run(
        self, user: str, process: ProcessRecord, parameters: dict[str, Any], response: str
    ) -> JobRecord:
        """Create the flow run of one job of ``process``; its first status."""
        process_id = process.process_id
        async with self.api.writes:
            try:
                flow_run = await self.api.rest.create_flow_run_from_deployment(
                    process.deployment_id,
                    parameters=parameters,
                    tags=[*job_tags(user, process_id), response_tag(response)],
                    name=process_id,
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:
                    self.processes.forget(user, process_id)
                    raise NoSuchProcess(f"process {process_id!r} was undeployed") from None
                if exc.response.status_code not in RETRY_CODES:
                    raise
                raise ServiceUnavailable(UNAVAILABLE) from exc
            except httpx.TransportError as exc:
                raise ServiceUnavailable(UNAVAILABLE) from exc
        self.api.log_later(
            flow_run.id,
            f"job created through the OGC API by user {user!r} for process {process_id!r}"
            + (" with callbacks to the subscriber" if "subscriber" in parameters else ""),
        )
        return job_record(flow_run, 0, self.api.redact)

    async def flow_run(self, user: str, job_id: str) -> FlowRun:
        """The flow run of ``user``'s job ``job_id``; ``NoSuchJob`` for another user's,
        ``ResultNotReady`` (``JobFailed``) for one still in the outbox."""
        try:
            uuid.UUID(job_id)
        except ValueError:
            raise NoSuchJob(f"no job {job_id!r}: job ids are UUIDs") from None
        flow_run = await find_run(self.api, job_id)
        if flow_run is None and self.api.outbox:
            waiting = await self.api.outbox.get(user, job_id)
            if waiting and waiting.error:
                raise JobFailed(waiting.error)
            if waiting:
                raise ResultNotReady(f"job {job_id} is accepted; it has not started yet")
            # The drainer deletes a row once Prefect holds its run: a run created between
            # the two reads above is found now.
            flow_run = await find_run(self.api, job_id)
        # Another user's job answers exactly like a job that does not exist.
        if flow_run is None or user_tag(user) not in flow_run.tags or TAG not in flow_run.tags:
            raise NoSuchJob(f"no job {job_id!r} for user {user!r}")
        return flow_run

    async def get_job(self, user: str, job_id: str) -> JobRecord:
        """The status of ``user``'s job, with its progress while it runs."""
        # The outbox first: a row goes only once Prefect holds the run.
        if self.api.outbox and (waiting := await self.api.outbox.get(user, job_id)):
            return outbox_record(waiting)
        flow_run = await self.flow_run(user, job_id)
        progress = None
        if flow_run.state and flow_run.state.type == StateType.RUNNING:
            progress = await self._progress(flow_run)
        record = self._status(flow_run, progress)
        # Waiting for the user's own running limit: say so (read from Prefect).
        quotas = Quotas(self.api)
        if record.status == "accepted" and (waiting := await quotas.waiting_message(user)):
            record = dataclasses.replace(record, message=waiting)
        return record

    async def list_jobs(self, user: str, filters: JobFilters) -> tuple[list[JobRecord], bool]:
        """A page of ``user``'s jobs, newest first, and whether more follow."""
        return await list_with_outbox(self.api.outbox, user, filters, self._list_runs)

    async def _list_runs(self, user: str, filters: JobFilters) -> tuple[list[JobRecord], bool]:
        flow_run_filter = FlowRunFilter(tags=FlowRunFilterTags(all_=[TAG, user_tag(user)]))
        if filters.process_ids:
            deployments = await self.api.call(
                self.api.client.read_deployments,
                deployment_filter=DeploymentFilter(
                    tags=DeploymentFilterTags(all_=[TAG, user_tag(user)])
                ),
            )
            wanted = {deployment_name(user, p) for p in filters.process_ids}
            ids = [d.id for d in deployments if d.name in wanted]
            if not ids:
                return [], False
            flow_run_filter.deployment_id = FlowRunFilterDeploymentId(any_=ids)
        if filters.statuses:
            flow_run_filter.state = FlowRunFilterState(
                type=FlowRunFilterStateType(any_=state_types(filters.statuses))
            )
        # A schedule's runs wait in Prefect ahead of their time; one becomes a job when its
        # time comes, so runs expected later than now are not listed.
        now = dt.datetime.now(dt.UTC)
        before = min(filters.created_before, now) if filters.created_before else now
        flow_run_filter.expected_start_time = FlowRunFilterExpectedStartTime(
            after_=filters.created_after, before_=before
        )
        if filters.min_duration_s is None and filters.max_duration_s is None:
            records, more = await self._page(flow_run_filter, filters)
        else:
            records, more = await self._scan(flow_run_filter, filters)
        return records, more

    async def dismiss(self, user: str, job_id: str) -> JobRecord:
        """Cancel a queued or running job; delete a finished one: its results, its record
        (``ogc_prefect.retention.delete_job``)."""
        if self.api.outbox and (waiting := await self.api.outbox.remove(user, job_id)):
            return dismissed(outbox_record(waiting))
        flow_run = await self.flow_run(user, job_id)
        state = flow_run.state
        if state and state.is_final():
            if state.type != StateType.CANCELLED:
                await delete_job(self.api, flow_run)
            return dismissed(job_record(flow_run, None, self.api.redact))
        await self.api.call(
            self.api.client.set_flow_run_state,
            flow_run.id,
            Cancelling(message="dismissed by the user"),
            force=True,
        )
        flow_run = await self.flow_run(user, job_id)
        return job_record(flow_run, None, self.api.redact)

    async def results(self, user: str, job_id: str) -> dict[str, Any]:
        """The results document of a successful job: ``JobFailed`` for a failed one,
        ``ResultNotReady`` for one that has not finished or was dismissed."""
        flow_run = await self.flow_run(user, job_id)
        record = job_record(flow_run, None, self.api.redact)
        if record.status == "failed":
            raise JobFailed(record.message)
        if record.status != "successful":
            raise ResultNotReady(
                f"job {job_id} is {record.status}; it has no results yet"
                if record.status != "dismissed"
                else f"job {job_id} was dismissed"
            )
        check_results_kept(flow_run, job_id, self.api.settings.retention)
        result = await flow_run.state.aresult(raise_on_failure=False)
        return result if isinstance(result, dict) else {}

    async def result_path(self, user: str, job_id: str, relative: str) -> Path:
        """The file or folder ``relative`` (``<output id>/<file>``) of ``user``'s job's
        results in the local result store, for the gateway to serve.

        ``NoSuchJob`` for another user's job, ``ResultNotReady`` before it succeeded,
        ``NotFound`` for a path that is not there, that leaves the job's results (``..``,
        an absolute path, a link pointing out), or when results are not in a local store.
        """
        flow_run = await self.flow_run(user, job_id)
        record = job_record(flow_run, None, self.api.redact)
        if record.status != "successful":
            raise ResultNotReady(f"job {job_id} is {record.status}; it has no results to serve")
        check_results_kept(flow_run, job_id, self.api.settings.retention)
        missing = NotFound(f"job {job_id} has no result {relative!r} on this server")
        store = urlparse(self.api.settings.results_url)
        if store.scheme != "file" or self.api.settings.workspace.enabled:
            raise missing
        try:
            root = LocalResultStorage(basepath=Path(store.path)).path_for(
                results_key(self.api.settings.results.prefix, job_id_of(flow_run.tags, flow_run.id))
            )
            found = (root / relative).resolve()
            if not found.is_relative_to(root) or not found.exists():
                raise missing
        except (OSError, ValueError):
            raise missing from None
        return found

    async def wait(self, user: str, job_id: str, timeout_s: float) -> JobRecord:
        """Poll a job until it ends, at most ``timeout_s`` seconds; its last status.

        Polls after 50 ms, then 1.5 times longer each time up to 1 s: a short job is
        answered at once, a long one costs Prefect a read a second.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            record = await self.get_job(user, job_id)
            if record.status in FINAL_STATUSES or time.monotonic() >= deadline:
                return record
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _status(self, flow_run: FlowRun, progress: int | None = None) -> JobRecord:
        """The status of the job ``flow_run`` is (with ``progress``, 0-100, when read),
        with when its results expire."""
        return with_expiry(job_record(flow_run, progress, self.api.redact), flow_run, self.api)

    async def _progress(self, flow_run: FlowRun) -> int:
        """Progress of a running job, 0-100 (see :func:`ogc_prefect.mapping.phase_progress`)."""
        task_runs = await self.api.call(
            self.api.client.read_task_runs,
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
        )
        progress = phase_progress(task_runs)
        if progress is not None:
            return progress
        artifacts = await self.api.call(
            self.api.client.read_artifacts,
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]),
                type=ArtifactFilterType(any_=["progress"]),
            ),
            sort=ArtifactSort.UPDATED_DESC,
            limit=1,
        )
        return execute_progress(float(artifacts[0].data) if artifacts else 0.0)

    async def _read_runs(
        self, flow_run_filter: FlowRunFilter, *, limit: int, offset: int
    ) -> list[FlowRun]:
        return await self.api.call(
            self.api.client.read_flow_runs,
            flow_run_filter=flow_run_filter,
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
            offset=offset,
        )

    async def _page(
        self, flow_run_filter: FlowRunFilter, filters: JobFilters
    ) -> tuple[list[JobRecord], bool]:
        """A page of runs Prefect filters whole; read in parts of at most PREFECT_PAGE."""
        runs: list[FlowRun] = []
        while len(runs) <= filters.limit:
            want = min(PREFECT_PAGE, filters.limit + 1 - len(runs))
            part = await self._read_runs(
                flow_run_filter, limit=want, offset=filters.offset + len(runs)
            )
            runs.extend(part)
            if len(part) < want:
                break
        records = [self._status(r) for r in runs]
        return records[: filters.limit], len(records) > filters.limit

    async def _scan(
        self, flow_run_filter: FlowRunFilter, filters: JobFilters
    ) -> tuple[list[JobRecord], bool]:
        """A page of runs of a duration: not a Prefect filter, so scan pages and keep the
        matching runs."""
        matched: list[JobRecord] = []
        scan_offset, skipped = 0, 0
        while True:
            runs = await self._read_runs(flow_run_filter, limit=PREFECT_PAGE, offset=scan_offset)
            for run in runs:
                if not duration_ok(run, filters):
                    continue
                if skipped < filters.offset:
                    skipped += 1
                    continue
                matched.append(self._status(run))
                if len(matched) > filters.limit:
                    return matched[: filters.limit], True
            if len(runs) < PREFECT_PAGE:
                return matched, False
            scan_offset += PREFECT_PAGE
