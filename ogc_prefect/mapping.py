"""The OGC ↔ Prefect mapping, as pure functions of Prefect objects: no client, no network.

* a deployed process is a Prefect deployment of the generic flow ``ogc-execute``, named
  ``<process id>@<user>``, tagged ``user:<user>`` and ``process:<id>`` (``core.naming``;
  with its own ``jobRetentionDays``, ``retention:<seconds>s`` too, which Prefect copies
  onto its runs); its package (packed CWL + OGC description) is an application-package
  block document, and the deployment's parameters name it (:func:`deployment_fields`);
* a job is a flow run of that deployment; the flow-run id is the job id, and its state
  gives the OGC status (:data:`OGC_STATUS`, :func:`job_record`);
* a job's progress comes from its task runs (stage-in, execute, stage-out) and, while
  execute runs, the flow's progress artifact (:func:`phase_progress`,
  :func:`execute_progress`);
* a reprocessing schedule is a schedule of the process's deployment whose schedule-level
  parameters hold the execute request (:func:`prefect_schedule`, :func:`schedule_record`);
* a job's logs are the Prefect logs of its flow run and task runs (:func:`log_records`).

The modules beside this one (processes, jobs, schedules, logs) read and write those
objects through the Prefect API and hand the records defined here to the gateway.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.client.schemas.objects import DeploymentSchedule, FlowRun, Log, StateType, TaskRun
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

import cwlpkg as cwl
from core.exceptions import InvalidParameter
from core.naming import TOOL_LINE, job_id_of, job_tags, package_block_name, process_of
from core.ogc import clean_message
from core.retention import DAY_S
from core.secrets import Redactor

__all__ = [
    "FINAL_STATUSES",
    "GATEWAY_LOGGER",
    "OGC_STATUS",
    "DeployedPackage",
    "JobFilters",
    "JobRecord",
    "LogRecord",
    "ProcessRecord",
    "ScheduleRecord",
    "ScheduleSpec",
    "clean_message",
    "deployment_fields",
    "dismissed",
    "duration_ok",
    "execute_progress",
    "job_record",
    "log_records",
    "phase_progress",
    "prefect_schedule",
    "run_parameters",
    "schedule_record",
    "state_types",
]

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
"""Flow-run state type → OGC job status. A job's state lives in Prefect only; this table is
how the gateway reads it (a run waiting for a worker is ``accepted``, a paused one still
``running``; Cancelling already counts as ``dismissed``, since the user asked for it)."""

FINAL_STATUSES = ("successful", "failed", "dismissed")
"""OGC statuses a job never leaves."""

GATEWAY_LOGGER = "oapip.gateway"
"""Logger name of the lines the gateway adds to a job's logs."""

_DEFAULT_MESSAGES = {
    "accepted": "job accepted",
    "running": "job running",
    "successful": "job finished",
    "failed": "job failed",
    "dismissed": "job dismissed",
}


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployedPackage:
    """A validated application package ready to deploy as process ``process_id``."""

    process_id: str
    workflow: dict[str, Any]
    entrypoint: str
    description: dict[str, Any]
    source: dict[str, Any]
    execution_engine: str | None = None
    job_retention_days: float | None = None  # its own retention; None: the site's

    @property
    def job_retention_s(self) -> float | None:
        """Seconds its jobs keep their results (its own ``jobRetentionDays``), if set."""
        days = self.job_retention_days
        return None if days is None else days * DAY_S

    @property
    def revision(self) -> str:
        """Digest of the packed CWL (16 hex digits): changes when the process is replaced."""
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
    """One job, read from its flow run: the fields of its OGC ``statusInfo``."""

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
    run_id: str | None = None  # the flow run's id ("" while the job waits in the outbox)
    expires: dt.datetime | None = None  # when the retention policy removes its results


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


# --- processes ----------------------------------------------------------------------------


def deployment_fields(user: str, package: DeployedPackage) -> dict[str, Any]:
    """The fields of ``user``'s deployment of ``package`` that a replace changes too.

    Its parameters name the package's block document and revision; its parameter schema
    shows the process's inputs as the Prefect UI's run form.
    """
    return {
        "version": str(package.description.get("version", "")),
        "description": package.description.get("description") or package.description.get("title"),
        "parameters": {
            "package": package_block_name(user, package.process_id),
            "revision": package.revision,
        },
        "tags": job_tags(user, package.process_id, retention_s=package.job_retention_s),
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


def run_parameters(
    description: dict[str, Any],
    inputs: dict[str, Any],
    outputs: dict[str, Any] | None,
    subscriber: dict[str, Any] | None,
    jobs_url: str,
) -> dict[str, Any]:
    """Flow-run parameters of one execute request to the process ``description``.

    ``inputs`` are validated against the description (``InvalidInput``); subscriber URIs
    must be http(s) URLs (``InvalidParameter``). ``jobs_url`` (the job list, which the
    callback documents and the links to results in the gateway's store start with) is
    kept when given.
    """
    parameters: dict[str, Any] = {"inputs": cwl.validate_inputs(description, inputs)}
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
    if jobs_url:
        parameters["jobs_url"] = jobs_url
    return parameters


# --- jobs ---------------------------------------------------------------------------------


def state_types(statuses: Iterable[str]) -> list[StateType]:
    """The flow-run state types of the OGC ``statuses`` (the /jobs ``status`` filter)."""
    wanted = set(statuses)
    return [state for state, status in OGC_STATUS.items() if status in wanted]


def job_record(flow_run: FlowRun, progress: int | None, redact: Redactor) -> JobRecord:
    """The job ``flow_run`` is, with ``progress`` (0-100) when the caller read it.

    An accepted job is at 0 and a successful one at 100 whatever ``progress`` says;
    ``redact`` cleans the message (a tool may print a credential in its error, cwltool
    a path of the engine).
    """
    state = flow_run.state
    status = OGC_STATUS.get(state.type, "accepted") if state else "accepted"
    if status == "successful":
        progress = 100
    elif status == "accepted":
        progress = 0
    message = redact(clean_message(state.message if state else "")) or _DEFAULT_MESSAGES[status]
    created_by = flow_run.created_by
    schedule_id = (
        str(created_by.id)
        if created_by is not None and created_by.type == "SCHEDULE" and created_by.id
        else None
    )
    return JobRecord(
        job_id=job_id_of(flow_run.tags, flow_run.id),
        process_id=process_of(flow_run.tags),
        schedule_id=schedule_id,
        run_id=str(flow_run.id),
        status=status,
        message=message,
        created=flow_run.created,
        started=flow_run.start_time,
        finished=flow_run.end_time if status in FINAL_STATUSES else None,
        updated=state.timestamp if state else flow_run.updated,
        progress=progress,
    )


def dismissed(record: JobRecord) -> JobRecord:
    """``record`` as the answer to dismissing it: a finished job is deleted, not cancelled."""
    return replace(record, status="dismissed", message="job dismissed")


def phase_progress(task_runs: Iterable[TaskRun]) -> int | None:
    """Progress (0-100) of a running job from its task runs, or None while execute runs.

    Stage-in is 0-10, execute 10-90, stage-out 90-100. While execute runs, the progress
    artifact places the job within 10-90 (:func:`execute_progress`).
    """
    phases = {t.name.rsplit("-", 1)[0]: t.state_type for t in task_runs if t.name}
    if "stage-out" in phases:
        return 100 if phases["stage-out"] == StateType.COMPLETED else 90
    if "execute" not in phases:
        return 5 if "stage-in" in phases else 0
    if phases["execute"] == StateType.COMPLETED:
        return 90
    return None


def execute_progress(done_pct: float) -> int:
    """Progress of a job whose execute phase has done ``done_pct`` % of its steps."""
    return int(10 + 0.8 * max(0.0, min(100.0, done_pct)))


def duration_ok(run: FlowRun, filters: JobFilters, now: dt.datetime | None = None) -> bool:
    """Whether ``run`` has run for ``filters``' min/max duration (a running job until
    ``now``); a run that has not started matches only without a minimum."""
    if run.start_time is None:
        return filters.min_duration_s is None
    end = run.end_time or now or dt.datetime.now(dt.UTC)
    seconds = (end - run.start_time).total_seconds()
    if filters.min_duration_s is not None and seconds < filters.min_duration_s:
        return False
    return not (filters.max_duration_s is not None and seconds > filters.max_duration_s)


# --- logs ---------------------------------------------------------------------------------


def log_records(
    logs: Iterable[Log], task_runs: Iterable[TaskRun], redact: Redactor
) -> list[LogRecord]:
    """The job's log lines, each with its source: the phase (the task's name: task-run
    names are ``<task>-<suffix>``), ``gateway`` for the gateway's lines, or ``flow``.

    Each line is ``redact``-ed, but a tool's own output (``tool: …``) keeps everything
    except secrets."""
    phases = {t.id: (t.name or "").rsplit("-", 1)[0] for t in task_runs}
    return [
        LogRecord(
            timestamp=log.timestamp,
            level=log.level,
            logger=log.name,
            source=phases.get(log.task_run_id, "task")
            if log.task_run_id
            else ("gateway" if log.name == GATEWAY_LOGGER else "flow"),
            message=redact.secrets_only(log.message)
            if log.message.startswith(TOOL_LINE)
            else redact(log.message),
        )
        for log in logs
    ]


# --- schedules ----------------------------------------------------------------------------


def prefect_schedule(
    spec: ScheduleSpec, *, min_interval_s: float
) -> CronSchedule | IntervalSchedule:
    """The Prefect schedule of ``spec``'s timing; ``InvalidParameter`` when it is not valid.

    An interval shorter than ``min_interval_s`` seconds is refused (every run is a job).
    """
    if (spec.cron is None) == (spec.interval_s is None):
        raise InvalidParameter("a schedule has either a `cron` or an `interval`, not both")
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParameter(
            f"unknown timezone {spec.timezone!r}; use an IANA name like Europe/Rome"
        ) from None
    if spec.interval_s is not None and spec.interval_s < min_interval_s:
        raise InvalidParameter(
            f"the interval is {spec.interval_s:g} s; schedules run at most every "
            f"{min_interval_s:g} s (OAPIP_SCHEDULE_MIN_INTERVAL_S)"
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


def schedule_record(process: ProcessRecord, schedule: DeploymentSchedule) -> ScheduleRecord:
    """The reprocessing schedule ``schedule`` of ``process``'s deployment."""
    timing = schedule.schedule
    params = schedule.parameters or {}
    interval = getattr(timing, "interval", None)
    spec = ScheduleSpec(
        cron=getattr(timing, "cron", None),
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
        process_id=process.process_id,
        deployment_id=process.deployment_id,
        spec=spec,
        parameters=params,
        created=schedule.created,
        updated=schedule.updated,
    )
