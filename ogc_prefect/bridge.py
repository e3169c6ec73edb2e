"""The OGC ↔ Prefect mapping: the only module of the gateway that talks to Prefect.

* a deployed process is a Prefect deployment of the generic flow ``ogc-execute``, named
  ``<process id>@<user>``, tagged ``user:<user>`` and ``process:<id>``; its package (packed
  CWL + OGC description) is an :class:`~blocks.package.ApplicationPackage` block document;
* a job is a flow run of that deployment; the flow-run id is the job id;
* job status, times, progress and results are read from the flow run, its state, its
  task runs, its progress artifact and its persisted result: there is no job table of
  our own;
* a reprocessing schedule is a schedule of the process's deployment whose schedule-level
  parameters hold the execute request (``inputs``, ``outputs``, ``subscriber``); its runs
  are created by Prefect's scheduler, and the run's ``created_by`` names the schedule;
* a job's logs are the Prefect logs of its flow run and task runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    DeploymentFilter,
    DeploymentFilterTags,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import DeploymentSchedule, FlowRun, StateType
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort, LogSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelling

import cwlpkg as cwl
from blocks.package import ApplicationPackage
from core.exceptions import (
    DuplicatedProcess,
    InvalidInput,
    InvalidParameter,
    JobFailed,
    NoSuchJob,
    NoSuchProcess,
    NoSuchSchedule,
    ResultNotReady,
    ServiceUnavailable,
)
from core.naming import (
    ENTRYPOINT,
    FLOW_NAME,
    PACKAGE_BLOCK_TYPE,
    PROCESS_ID,
    TAG,
    deployment_name,
    job_tags,
    package_block_name,
    process_of,
    user_tag,
)
from core.secrets import redact, secret_values
from core.settings import Settings
from ogc_prefect.rest import RETRY_CODES, PrefectRest

__all__ = [
    "DeployedPackage",
    "JobFilters",
    "JobRecord",
    "LogRecord",
    "OGC_STATUS",
    "PrefectBridge",
    "ProcessRecord",
    "ScheduleRecord",
    "ScheduleSpec",
]

_PREFECT_PAGE = 200  # most flow runs the Prefect API returns per call (its default limit)
_UNAVAILABLE = "the Prefect server did not answer in time; try again shortly"
_LOG_BATCH_S = 0.2  # how long gateway log lines wait to share one request with others

# DESIGN §3: flow-run state → OGC status.
OGC_STATUS: dict[StateType, str] = {
    StateType.SCHEDULED: "accepted",
    StateType.PENDING: "accepted",
    StateType.RUNNING: "running",
    StateType.PAUSED: "running",
    StateType.COMPLETED: "successful",
    StateType.FAILED: "failed",
    StateType.CRASHED: "failed",
    StateType.CANCELLING: "dismissed",
    StateType.CANCELLED: "dismissed",
}
_STATE_TYPES: dict[str, list[StateType]] = {}
for _state, _status in OGC_STATUS.items():
    _STATE_TYPES.setdefault(_status, []).append(_state)

_PREFECT_PREFIXES = re.compile(
    r"^(Flow run encountered an exception|Task run encountered an exception)[^:]*:\s*"
    r"(\w+(Error|Failed|Exception|Cancelled)?:\s*)?"
)


@dataclass(frozen=True)
class DeployedPackage:
    """A validated application package ready to deploy as process ``process_id``."""

    process_id: str
    workflow: dict[str, Any]
    entrypoint: str
    description: dict[str, Any]
    source: dict[str, Any]
    execution_engine: str | None = None

    @property
    def revision(self) -> str:
        blob = json.dumps(self.workflow, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ProcessRecord:
    """A deployed process as the gateway serves it."""

    process_id: str
    owner: str
    deployment_id: uuid.UUID
    revision: str
    package_name: str
    description: dict[str, Any]


@dataclass(frozen=True)
class JobRecord:
    """One job, read from its flow run."""

    job_id: str
    process_id: str | None
    status: str
    message: str
    created: dt.datetime | None
    started: dt.datetime | None
    finished: dt.datetime | None
    updated: dt.datetime | None
    progress: int | None
    schedule_id: str | None = None  # set on runs a reprocessing schedule created


@dataclass(frozen=True)
class ScheduleSpec:
    """What a reprocessing schedule runs, and when: one of ``cron`` or ``interval_s``."""

    cron: str | None = None
    interval_s: float | None = None
    timezone: str = "UTC"
    anchor: dt.datetime | None = None
    active: bool = True
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    subscriber: dict[str, Any] | None = None


@dataclass(frozen=True)
class ScheduleRecord:
    """A reprocessing schedule, read from the deployment schedule that holds it."""

    schedule_id: str
    process_id: str
    deployment_id: uuid.UUID
    spec: ScheduleSpec
    parameters: dict[str, Any]  # the schedule-level flow-run parameters, as Prefect has them
    created: dt.datetime | None
    updated: dt.datetime | None


@dataclass(frozen=True)
class LogRecord:
    """One log line of a job: its time, level, source (a task, or the flow) and text."""

    timestamp: dt.datetime
    level: int
    logger: str
    source: str
    message: str


@dataclass
class JobFilters:
    """The /jobs query: OGC filters plus paging."""

    process_ids: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    limit: int = 10
    offset: int = 0


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code in (429, 500, 502, 503, 504)
    return isinstance(exc, httpx.TransportError)


class PrefectBridge:
    """OGC operations on top of one shared asynchronous Prefect client."""

    def __init__(self, client: PrefectClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._secrets = secret_values(settings)
        self._flow_id: uuid.UUID | None = None
        self._packages: dict[tuple[str, str], ApplicationPackage] = {}
        self._processes: dict[tuple[str, str], tuple[float, ProcessRecord]] = {}
        # Prefect on SQLite degrades badly under concurrent writers (DESIGN §6): queue
        # writes here, at the concurrency the database handles (settings).
        self._writes = asyncio.Semaphore(settings.prefect.write_concurrency)
        self._background: set[asyncio.Task[None]] = set()
        self._log_lines: list[Any] = []
        # Creating a job's flow run: see ogc_prefect.rest for why not the client.
        self.rest = PrefectRest(settings.prefect.api_url)

    async def close(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.rest.aclose()

    # --- plumbing ----------------------------------------------------------------------
    async def _call(self, func: Any, *args: Any, attempts: int = 8, **kwargs: Any) -> Any:
        """Call the Prefect API, retrying transient failures (locked SQLite, restarts)."""
        delay = 0.05
        for attempt in range(1, attempts + 1):
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                if not _retryable(exc) or attempt == attempts:
                    if _retryable(exc):
                        raise ServiceUnavailable(_UNAVAILABLE) from exc
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def flow_id(self) -> uuid.UUID:
        if self._flow_id is None:
            self._flow_id = await self._call(self.client.create_flow_from_name, FLOW_NAME)
        return self._flow_id

    # --- processes ---------------------------------------------------------------------
    async def _package(self, name: str, revision: str) -> ApplicationPackage:
        key = (name, revision)
        if key not in self._packages:
            document = await self._call(
                self.client.read_block_document_by_name, name, PACKAGE_BLOCK_TYPE
            )
            self._packages[key] = ApplicationPackage._from_block_document(document)
        return self._packages[key]

    async def _record(self, deployment: Any) -> ProcessRecord:
        params = deployment.parameters or {}
        package = await self._package(params["package"], params.get("revision", ""))
        return ProcessRecord(
            process_id=package.process_id,
            owner=package.owner,
            deployment_id=deployment.id,
            revision=params.get("revision", ""),
            package_name=params["package"],
            description=package.description,
        )

    async def get_process(
        self, user: str, process_id: str, *, max_age_s: float = 0
    ) -> ProcessRecord:
        """``user``'s process ``process_id``; ``max_age_s`` allows a cached answer."""
        if not PROCESS_ID.match(process_id):
            # Could never have been deployed; Prefect would choke on some of these names.
            raise NoSuchProcess(f"no process {process_id[:100]!r} is deployed for user {user!r}")
        key = (user, process_id)
        cached = self._processes.get(key)
        if cached and time.monotonic() - cached[0] <= max_age_s:
            return cached[1]
        try:
            deployment = await self._call(
                self.client.read_deployment_by_name,
                f"{FLOW_NAME}/{deployment_name(user, process_id)}",
            )
        except ObjectNotFound:
            self._processes.pop(key, None)
            raise NoSuchProcess(
                f"no process {process_id!r} is deployed for user {user!r}"
            ) from None
        record = await self._record(deployment)
        self._processes[key] = (time.monotonic(), record)
        return record

    async def list_processes(self, user: str) -> list[ProcessRecord]:
        deployments = await self._call(
            self.client.read_deployments,
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            deployment_filter=DeploymentFilter(
                tags=DeploymentFilterTags(all_=[TAG, user_tag(user)])
            ),
        )
        records = [await self._record(d) for d in deployments]
        return sorted(records, key=lambda r: r.process_id)

    def _deployment_fields(self, user: str, package: DeployedPackage) -> dict[str, Any]:
        name = package_block_name(user, package.process_id)
        return {
            "version": str(package.description.get("version", "")),
            "description": package.description.get("description")
            or package.description.get("title"),
            "parameters": {"package": name, "revision": package.revision},
            "tags": job_tags(user, package.process_id),
            "parameter_openapi_schema": {
                "title": "Parameters",
                "type": "object",
                "properties": {
                    "inputs": {
                        **cwl.input_schema(package.description),
                        "title": "inputs",
                        "position": 0,
                    },
                    "package": {"type": "string", "title": "package", "position": 1},
                    "revision": {"type": "string", "title": "revision", "position": 2},
                    # Optional parts of an execute request (schedules carry them too).
                    "outputs": {"type": "object", "title": "outputs", "position": 3},
                    "subscriber": {"type": "object", "title": "subscriber", "position": 4},
                    "jobs_url": {"type": "string", "title": "jobs_url", "position": 5},
                },
                "required": ["inputs", "package"],
                "definitions": {},
            },
        }

    async def _save_package(self, user: str, package: DeployedPackage, *, overwrite: bool) -> str:
        name = package_block_name(user, package.process_id)
        block = ApplicationPackage(
            process_id=package.process_id,
            owner=user,
            revision=package.revision,
            entrypoint=package.entrypoint,
            workflow=package.workflow,
            description=package.description,
            source=package.source,
            execution_engine=package.execution_engine,
        )
        await block.save(name, overwrite=overwrite, client=self.client)
        return name

    async def deploy(self, user: str, package: DeployedPackage) -> ProcessRecord:
        """Create the process: package block + deployment. 409 if the id exists."""
        pid = package.process_id
        try:
            await self.get_process(user, pid)
        except NoSuchProcess:
            pass
        else:
            raise DuplicatedProcess(
                f"process {pid!r} is already deployed; replace it with PUT "
                f"/processes/{pid} or undeploy it first"
            )
        async with self._writes:
            await self._save_package(user, package, overwrite=True)
            fields = self._deployment_fields(user, package)
            await self._call(
                self.client.create_deployment,
                flow_id=await self.flow_id(),
                name=deployment_name(user, pid),
                entrypoint=ENTRYPOINT,
                work_pool_name=self.settings.prefect.work_pool,
                enforce_parameter_schema=False,
                **fields,
            )
        return await self.get_process(user, pid)

    async def replace(self, user: str, process_id: str, package: DeployedPackage) -> None:
        from prefect.client.schemas.actions import DeploymentUpdate

        record = await self.get_process(user, process_id)
        if package.process_id != process_id:
            raise InvalidParameter(
                f"the package describes process {package.process_id!r}, not {process_id!r}; "
                f"select the workflow with ?w={process_id} or deploy it as a new process"
            )
        async with self._writes:
            await self._save_package(user, package, overwrite=True)
            update = DeploymentUpdate(**self._deployment_fields(user, package))
            # No `schedules` in the update: Prefect keeps the deployment's schedules, drops
            # their upcoming runs and creates them again with the new revision.
            await self._call(self.client.update_deployment, record.deployment_id, update)
        self._processes.pop((user, process_id), None)
        await self._pause_invalid_schedules(user, process_id, package.description)

    async def _pause_invalid_schedules(
        self, user: str, process_id: str, description: dict[str, Any]
    ) -> None:
        """Pause the schedules whose inputs the replaced process no longer accepts."""
        for schedule in await self.list_schedules(user, process_id):
            if not schedule.spec.active:
                continue
            try:
                cwl.validate_inputs(description, schedule.spec.inputs)
            except InvalidInput:
                async with self._writes:
                    await self._call(
                        self.client.update_deployment_schedule,
                        schedule.deployment_id,
                        uuid.UUID(schedule.schedule_id),
                        active=False,
                        parameters=schedule.parameters,
                    )

    async def undeploy(self, user: str, process_id: str) -> None:
        record = await self.get_process(user, process_id)
        async with self._writes:
            await self._call(self.client.delete_deployment, record.deployment_id)
            try:
                document = await self.client.read_block_document_by_name(
                    record.package_name, PACKAGE_BLOCK_TYPE
                )
                await self.client.delete_block_document(document.id)
            except ObjectNotFound:
                pass
        self._processes.pop((user, process_id), None)

    async def package_source(self, user: str, process_id: str) -> dict[str, Any]:
        record = await self.get_process(user, process_id)
        package = await self._package(record.package_name, record.revision)
        return package.source.get("document") or package.workflow

    # --- jobs --------------------------------------------------------------------------
    def _run_parameters(
        self,
        record: ProcessRecord,
        inputs: dict[str, Any],
        outputs: dict[str, Any] | None,
        subscriber: dict[str, Any] | None,
        jobs_url: str,
    ) -> dict[str, Any]:
        """Flow-run parameters of one execute request (inputs validated here)."""
        parameters: dict[str, Any] = {"inputs": cwl.validate_inputs(record.description, inputs)}
        if outputs:
            parameters["outputs"] = outputs
        if subscriber:
            bad = [
                f"{key}={uri!r}"
                for key, uri in subscriber.items()
                if uri and not (isinstance(uri, str) and uri.startswith(("http://", "https://")))
            ]
            if bad:
                raise InvalidParameter(f"subscriber URIs must be http(s) URLs: {', '.join(bad)}")
            # Not a secret: the flow reads it to call the subscriber back.
            parameters["subscriber"] = {k: v for k, v in subscriber.items() if v}
            parameters["jobs_url"] = jobs_url
        return parameters

    async def submit(
        self,
        user: str,
        process_id: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any] | None,
        *,
        subscriber: dict[str, Any] | None = None,
        jobs_url: str = "",
    ) -> JobRecord:
        """Validate ``inputs`` and create the job's flow run; return its first status.

        ``jobs_url`` is the job list URL the callbacks to ``subscriber`` link to.
        """
        record = await self.get_process(user, process_id, max_age_s=2.0)
        parameters = self._run_parameters(record, inputs, outputs, subscriber, jobs_url)
        async with self._writes:
            try:
                flow_run = await self.rest.create_flow_run_from_deployment(
                    record.deployment_id,
                    parameters=parameters,
                    tags=job_tags(user, process_id),
                    name=process_id,
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:
                    self._processes.pop((user, process_id), None)
                    raise NoSuchProcess(f"process {process_id!r} was undeployed") from None
                if exc.response.status_code not in RETRY_CODES:
                    raise
                raise ServiceUnavailable(_UNAVAILABLE) from exc
            except httpx.TransportError as exc:
                raise ServiceUnavailable(_UNAVAILABLE) from exc
        self._log_later(
            flow_run.id,
            f"job created through the OGC API by user {user!r} for process {process_id!r}"
            + (" with callbacks to the subscriber" if subscriber else ""),
        )
        return self._job_record(flow_run, progress=0)

    def _log_later(self, flow_run_id: uuid.UUID, message: str) -> None:
        """Add a gateway line to a job's Prefect logs without delaying the response.

        Lines are sent in batches (one request for a burst of jobs), at most
        ``_LOG_BATCH_S`` after they were written.
        """
        from prefect.client.schemas.actions import LogCreate

        self._log_lines.append(
            LogCreate(
                name="oapip.gateway",
                level=20,
                message=message,
                timestamp=dt.datetime.now(dt.UTC),
                flow_run_id=flow_run_id,
            )
        )
        if len(self._log_lines) == 1:
            self._in_background(self._send_logs())

    async def _send_logs(self) -> None:
        await asyncio.sleep(_LOG_BATCH_S)
        lines, self._log_lines = self._log_lines, []
        with contextlib.suppress(Exception):  # a lost gateway line must not fail a job
            await self._call(self.client.create_logs, lines, attempts=3)

    def _in_background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _flow_run(self, user: str, job_id: str) -> FlowRun:
        try:
            run_id = uuid.UUID(job_id)
        except ValueError:
            raise NoSuchJob(f"no job {job_id!r}: job ids are UUIDs") from None
        try:
            flow_run = await self._call(self.client.read_flow_run, run_id)
        except ObjectNotFound:
            flow_run = None
        # Another user's job answers exactly like a job that does not exist.
        if flow_run is None or user_tag(user) not in flow_run.tags or TAG not in flow_run.tags:
            raise NoSuchJob(f"no job {job_id!r} for user {user!r}")
        return flow_run

    async def _progress(self, flow_run: FlowRun) -> int:
        """Progress of a running job, 0-100.

        The flow's task runs give the phase (stage-in 0-10, execute 10-90, stage-out
        90-100); while execute runs, the progress artifact of a multi-step workflow
        (completed steps) places it within 10-90.
        """
        task_runs = await self._call(
            self.client.read_task_runs,
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
        )
        phases = {t.name.rsplit("-", 1)[0]: t.state_type for t in task_runs if t.name}
        if "stage-out" in phases:
            return 100 if phases["stage-out"] == StateType.COMPLETED else 90
        if "execute" not in phases:
            return 5 if "stage-in" in phases else 0
        if phases["execute"] == StateType.COMPLETED:
            return 90
        artifacts = await self._call(
            self.client.read_artifacts,
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]),
                type=ArtifactFilterType(any_=["progress"]),
            ),
            sort=ArtifactSort.UPDATED_DESC,
            limit=1,
        )
        done = float(artifacts[0].data) if artifacts else 0.0
        return int(10 + 0.8 * max(0.0, min(100.0, done)))

    def _job_record(self, flow_run: FlowRun, progress: int | None) -> JobRecord:
        state = flow_run.state
        status = OGC_STATUS.get(state.type, "accepted") if state else "accepted"
        process_id = process_of(flow_run.tags)
        if status == "successful":
            progress = 100
        elif status == "accepted":
            progress = 0
        message = (
            redact(_clean_message(state.message if state else ""), self._secrets)
            or {
                "accepted": "job accepted",
                "running": "job running",
                "successful": "job finished",
                "failed": "job failed",
                "dismissed": "job dismissed",
            }[status]
        )
        created_by = flow_run.created_by
        schedule_id = (
            str(created_by.id)
            if created_by is not None and created_by.type == "SCHEDULE" and created_by.id
            else None
        )
        return JobRecord(
            job_id=str(flow_run.id),
            process_id=process_id,
            schedule_id=schedule_id,
            status=status,
            message=message,
            created=flow_run.created,
            started=flow_run.start_time,
            finished=flow_run.end_time if status in ("successful", "failed", "dismissed") else None,
            updated=state.timestamp if state else flow_run.updated,
            progress=progress,
        )

    async def get_job(self, user: str, job_id: str) -> JobRecord:
        flow_run = await self._flow_run(user, job_id)
        progress = None
        if flow_run.state and flow_run.state.type == StateType.RUNNING:
            progress = await self._progress(flow_run)
        return self._job_record(flow_run, progress)

    async def list_jobs(self, user: str, filters: JobFilters) -> tuple[list[JobRecord], bool]:
        """A page of ``user``'s jobs, newest first, and whether more follow."""
        flow_run_filter = FlowRunFilter(tags=FlowRunFilterTags(all_=[TAG, user_tag(user)]))
        if filters.process_ids:
            deployments = await self._call(
                self.client.read_deployments,
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
            types = [t for s in filters.statuses for t in _STATE_TYPES[s]]
            flow_run_filter.state = FlowRunFilterState(type=FlowRunFilterStateType(any_=types))
        # A schedule's runs wait in Prefect ahead of their time; one becomes a job when its
        # time comes, so runs expected later than now are not listed.
        now = dt.datetime.now(dt.UTC)
        before = min(filters.created_before, now) if filters.created_before else now
        flow_run_filter.expected_start_time = FlowRunFilterExpectedStartTime(
            after_=filters.created_after, before_=before
        )
        post_filter = filters.min_duration_s is not None or filters.max_duration_s is not None
        if not post_filter:
            # Prefect answers at most _PREFECT_PAGE runs per call: read the page in parts.
            runs: list[FlowRun] = []
            while len(runs) <= filters.limit:
                want = min(_PREFECT_PAGE, filters.limit + 1 - len(runs))
                part = await self._call(
                    self.client.read_flow_runs,
                    flow_run_filter=flow_run_filter,
                    sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                    limit=want,
                    offset=filters.offset + len(runs),
                )
                runs.extend(part)
                if len(part) < want:
                    break
            records = [self._job_record(r, None) for r in runs]
            return records[: filters.limit], len(records) > filters.limit
        # Durations are not a Prefect filter: scan in pages and keep the matching runs.
        matched: list[JobRecord] = []
        scan_offset, skipped = 0, 0
        while True:
            runs = await self._call(
                self.client.read_flow_runs,
                flow_run_filter=flow_run_filter,
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=_PREFECT_PAGE,
                offset=scan_offset,
            )
            for run in runs:
                if not _duration_ok(run, filters):
                    continue
                if skipped < filters.offset:
                    skipped += 1
                    continue
                matched.append(self._job_record(run, None))
                if len(matched) > filters.limit:
                    return matched[: filters.limit], True
            if len(runs) < _PREFECT_PAGE:
                return matched, False
            scan_offset += _PREFECT_PAGE

    async def dismiss(self, user: str, job_id: str) -> JobRecord:
        """Cancel a queued or running job; delete a finished one (and its record)."""
        flow_run = await self._flow_run(user, job_id)
        state = flow_run.state
        if state and state.is_final():
            if state.type != StateType.CANCELLED:
                await self._call(self.client.delete_flow_run, flow_run.id)
            record = self._job_record(flow_run, None)
            return JobRecord(
                **{**record.__dict__, "status": "dismissed", "message": "job dismissed"}
            )
        await self._call(
            self.client.set_flow_run_state,
            flow_run.id,
            Cancelling(message="dismissed by the user"),
            force=True,
        )
        flow_run = await self._flow_run(user, job_id)
        return self._job_record(flow_run, None)

    async def results(self, user: str, job_id: str) -> dict[str, Any]:
        flow_run = await self._flow_run(user, job_id)
        record = self._job_record(flow_run, None)
        if record.status == "failed":
            raise JobFailed(record.message)
        if record.status != "successful":
            raise ResultNotReady(
                f"job {job_id} is {record.status}; it has no results yet"
                if record.status != "dismissed"
                else f"job {job_id} was dismissed"
            )
        result = await flow_run.state.aresult(raise_on_failure=False)
        return result if isinstance(result, dict) else {}

    async def wait(self, user: str, job_id: str, timeout_s: float) -> JobRecord:
        """Wait for a job to end (event-driven where Prefect allows), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            record = await self.get_job(user, job_id)
            if (
                record.status in ("successful", "failed", "dismissed")
                or time.monotonic() >= deadline
            ):
                return record
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    # --- logs ----------------------------------------------------------------------------
    async def job_logs(
        self, user: str, job_id: str, *, limit: int, offset: int
    ) -> tuple[list[LogRecord], bool]:
        """A page of the job's log lines, oldest first, and whether more follow."""
        flow_run = await self._flow_run(user, job_id)
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
        logs = await self._call(
            self.client.read_logs,
            log_filter=log_filter,
            limit=min(limit, _PREFECT_PAGE),
            offset=offset,
            sort=LogSort.TIMESTAMP_ASC,
        )
        # Prefect answers at most _PREFECT_PAGE lines a call: ask for one more separately.
        more = len(logs) == limit and bool(
            await self._call(
                self.client.read_logs, log_filter=log_filter, limit=1, offset=offset + limit
            )
        )
        task_runs = await self._call(
            self.client.read_task_runs,
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
        )
        # Task-run names are "<task>-<suffix>": the task's name says which phase logged.
        phases = {t.id: (t.name or "").rsplit("-", 1)[0] for t in task_runs}
        records = [
            LogRecord(
                timestamp=log.timestamp,
                level=log.level,
                logger=log.name,
                source=phases.get(log.task_run_id, "task")
                if log.task_run_id
                else ("gateway" if log.name == "oapip.gateway" else "flow"),
                message=log.message,
            )
            for log in logs
        ]
        return records, more

    # --- reprocessing schedules -------------------------------------------------------
    def _prefect_schedule(self, spec: ScheduleSpec) -> CronSchedule | IntervalSchedule:
        if (spec.cron is None) == (spec.interval_s is None):
            raise InvalidParameter("a schedule has either a `cron` or an `interval`, not both")
        try:
            ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidParameter(
                f"unknown timezone {spec.timezone!r}; use an IANA name like Europe/Rome"
            ) from None
        shortest = self.settings.gateway.schedule_min_interval_s
        if spec.interval_s is not None and spec.interval_s < shortest:
            raise InvalidParameter(
                f"the interval is {spec.interval_s:g} s; schedules run at most every "
                f"{shortest:g} s (OAPIP_SCHEDULE_MIN_INTERVAL_S)"
            )
        try:
            if spec.cron is not None:
                return CronSchedule(cron=spec.cron, timezone=spec.timezone)
            return IntervalSchedule(
                interval=dt.timedelta(seconds=spec.interval_s or 0),
                anchor_date=spec.anchor or dt.datetime.now(dt.UTC),
                timezone=spec.timezone,
            )
        except ValueError as exc:
            raise InvalidParameter(f"the schedule is not valid: {exc}") from None

    def _schedule_record(
        self, record: ProcessRecord, schedule: DeploymentSchedule
    ) -> ScheduleRecord:
        timing = schedule.schedule
        params = schedule.parameters or {}
        cron = getattr(timing, "cron", None)
        interval = getattr(timing, "interval", None)
        spec = ScheduleSpec(
            cron=cron,
            interval_s=interval.total_seconds() if interval is not None else None,
            timezone=getattr(timing, "timezone", None) or "UTC",
            anchor=getattr(timing, "anchor_date", None),
            active=bool(schedule.active),
            inputs=params.get("inputs", {}),
            outputs=params.get("outputs"),
            subscriber=params.get("subscriber"),
        )
        return ScheduleRecord(
            schedule_id=str(schedule.id),
            process_id=record.process_id,
            deployment_id=record.deployment_id,
            spec=spec,
            parameters=params,
            created=schedule.created,
            updated=schedule.updated,
        )

    async def _schedule_runs_now(self, deployment_id: uuid.UUID) -> None:
        """Have Prefect create a deployment's upcoming scheduled runs now.

        Its scheduler service would do it on its next pass (every 60 s); a new or
        resumed schedule should not wait that long.
        """
        await self._call(
            self.client.request,
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": deployment_id},
            json={},
        )

    async def create_schedule(
        self, user: str, process_id: str, spec: ScheduleSpec, *, jobs_url: str
    ) -> ScheduleRecord:
        """Add a reprocessing schedule to ``user``'s process; inputs validated like execute."""
        from prefect.client.schemas.actions import DeploymentScheduleCreate

        record = await self.get_process(user, process_id)
        timing = self._prefect_schedule(spec)
        parameters = self._run_parameters(
            record, spec.inputs, spec.outputs, spec.subscriber, jobs_url
        )
        async with self._writes:
            created = await self._call(
                self.client.create_deployment_schedules,
                record.deployment_id,
                [
                    DeploymentScheduleCreate(
                        schedule=timing, active=spec.active, parameters=parameters
                    )
                ],
            )
            if spec.active:
                await self._schedule_runs_now(record.deployment_id)
        return self._schedule_record(record, created[0])

    async def list_schedules(self, user: str, process_id: str) -> list[ScheduleRecord]:
        record = await self.get_process(user, process_id)
        schedules = await self._call(self.client.read_deployment_schedules, record.deployment_id)
        records = [self._schedule_record(record, s) for s in schedules]
        return sorted(records, key=lambda r: (r.created or dt.datetime.min, r.schedule_id))

    async def get_schedule(self, user: str, process_id: str, schedule_id: str) -> ScheduleRecord:
        for record in await self.list_schedules(user, process_id):
            if record.schedule_id == schedule_id:
                return record
        raise NoSuchSchedule(f"process {process_id!r} has no schedule {schedule_id!r}")

    async def update_schedule(
        self,
        user: str,
        process_id: str,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        jobs_url: str,
    ) -> ScheduleRecord:
        """Change a schedule: any of ``active`` (pause/resume), its timing, its request.

        Prefect drops the deployment's upcoming runs on every schedule change; they are
        created again from the schedules as they now are.
        """
        current = await self.get_schedule(user, process_id, schedule_id)
        spec = current.spec
        if "cron" in changes or "interval_s" in changes:
            # A new timing replaces the old one whole: cron and interval exclude each other.
            spec = replace(spec, cron=None, interval_s=None, anchor=None)
        spec = replace(spec, **changes)
        # Prefect resets the parameters of a schedule update that leaves them out.
        kwargs: dict[str, Any] = {"active": spec.active, "parameters": current.parameters}
        if {"cron", "interval_s", "timezone", "anchor"} & set(changes):
            kwargs["schedule"] = self._prefect_schedule(spec)
        if {"inputs", "outputs", "subscriber"} & set(changes):
            record = await self.get_process(user, process_id)
            kwargs["parameters"] = self._run_parameters(
                record, spec.inputs, spec.outputs, spec.subscriber, jobs_url
            )
        async with self._writes:
            try:
                await self._call(
                    self.client.update_deployment_schedule,
                    current.deployment_id,
                    uuid.UUID(schedule_id),
                    **kwargs,
                )
            except ObjectNotFound:
                raise NoSuchSchedule(
                    f"process {process_id!r} has no schedule {schedule_id!r}"
                ) from None
            await self._schedule_runs_now(current.deployment_id)
        return await self.get_schedule(user, process_id, schedule_id)

    async def delete_schedule(self, user: str, process_id: str, schedule_id: str) -> None:
        """Delete a schedule; Prefect deletes its runs that have not started."""
        current = await self.get_schedule(user, process_id, schedule_id)
        async with self._writes:
            with contextlib.suppress(ObjectNotFound):
                await self._call(
                    self.client.delete_deployment_schedule,
                    current.deployment_id,
                    uuid.UUID(schedule_id),
                )
            # Prefect dropped every upcoming run of the deployment: recreate the others'.
            await self._schedule_runs_now(current.deployment_id)


def _duration_ok(run: FlowRun, filters: JobFilters) -> bool:
    if run.start_time is None:
        return filters.min_duration_s is None
    end = run.end_time or dt.datetime.now(dt.UTC)
    seconds = (end - run.start_time).total_seconds()
    if filters.min_duration_s is not None and seconds < filters.min_duration_s:
        return False
    return not (filters.max_duration_s is not None and seconds > filters.max_duration_s)


def _clean_message(message: str | None) -> str:
    """A flow-run state message without Prefect's boilerplate prefix."""
    if not message:
        return ""
    return _PREFECT_PREFIXES.sub("", message.strip())[:2000]
