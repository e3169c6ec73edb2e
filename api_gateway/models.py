"""Request and response models, named as OGC API - Processes names them.

Responses are built as plain dicts in :mod:`api_gateway.views` so that their JSON is
exactly the standard's; these models document them in ``/api`` and parse requests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConfClasses",
    "ExecuteRequest",
    "Exception_",
    "JobList",
    "JobLogs",
    "LandingPage",
    "LogEntry",
    "Link",
    "ProcessDescription",
    "ProcessList",
    "ProcessSummary",
    "Results",
    "Schedule",
    "ScheduleCreate",
    "ScheduleList",
    "ScheduleUpdate",
    "StatusInfo",
    "Subscriber",
]


class Link(BaseModel):
    href: str
    rel: str | None = None
    type: str | None = None
    title: str | None = None


class Subscriber(BaseModel):
    """Where to call back as a job progresses (Part 1 *callback*): each URI gets a POST."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"example": {"successUri": "https://client.example.org/done"}},
    )
    successUri: str | None = Field(
        default=None, description="Receives the results document when the job succeeds."
    )
    inProgressUri: str | None = Field(
        default=None, description="Receives the job status when the job starts running."
    )
    failedUri: str | None = Field(
        default=None, description="Receives the job status when the job fails."
    )


class ExecuteRequest(BaseModel):
    """Body of ``POST /processes/{id}/execution`` (Part 1 1.0 ``execute.yaml``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {"inputs": {"fn": "resize", "url": "https://…/in.png", "size": "50%"}}
        },
    )
    inputs: dict[str, Any] = Field(default_factory=dict, description="Input values by input id.")
    outputs: dict[str, Any] | None = Field(
        default=None, description="Outputs to return, by id, with their transmissionMode."
    )
    response: Literal["raw", "document"] = Field(
        default="raw",
        description="`raw` (the default of Part 1 1.0): one output as its value, several as "
        "multipart/related, outputs by reference as Link headers; `document`: the results "
        "document, a member per output.",
    )
    subscriber: Subscriber | None = None


class StatusInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    processID: str | None = None
    type: Literal["process"] = "process"
    jobID: str
    status: Literal["accepted", "running", "successful", "failed", "dismissed"]
    message: str | None = None
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    updated: str | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    scheduleID: str | None = Field(
        default=None, description="Set on a job a reprocessing schedule started: its id."
    )
    links: list[Link] = Field(default_factory=list)


class JobList(BaseModel):
    jobs: list[StatusInfo]
    links: list[Link]


class ProcessSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    title: str | None = None
    description: str | None = None
    version: str
    keywords: list[str] | None = None
    jobControlOptions: list[str] = Field(default_factory=list)
    outputTransmission: list[str] = Field(default_factory=list)
    mutable: bool = True
    links: list[Link] = Field(default_factory=list)


class ProcessDescription(ProcessSummary):
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)


class ProcessList(BaseModel):
    processes: list[ProcessSummary]
    links: list[Link]


class Results(BaseModel):
    model_config = ConfigDict(extra="allow")


class LandingPage(BaseModel):
    title: str | None = None
    description: str | None = None
    links: list[Link]


class ConfClasses(BaseModel):
    conformsTo: list[str]


class Exception_(BaseModel):
    """OGC exception (RFC 7807 problem details)."""

    model_config = ConfigDict(title="Exception", extra="allow")
    type: str
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None


class ScheduleCreate(BaseModel):
    """Body of ``POST /processes/{id}/schedules``: when to run, and the execute request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "cron": "0 2 * * *",
                "timezone": "Europe/Rome",
                "inputs": {"fn": "resize", "url": "https://…/in.png", "size": "50%"},
            }
        },
    )
    cron: str | None = Field(
        default=None, description="Cron expression (5 fields); give this or `interval`."
    )
    interval: float | None = Field(
        default=None, gt=0, description="Seconds between runs; give this or `cron`."
    )
    anchorDate: str | None = Field(
        default=None,
        description="RFC 3339 time an interval counts from (default: now).",
    )
    timezone: str = Field(default="UTC", description="IANA time zone of the schedule.")
    active: bool = Field(default=True, description="False creates the schedule paused.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Input values by input id, as in an execute request."
    )
    outputs: dict[str, Any] | None = Field(
        default=None, description="Outputs to keep, as in an execute request."
    )
    subscriber: Subscriber | None = Field(
        default=None, description="Callbacks for every run of the schedule."
    )


class ScheduleUpdate(BaseModel):
    """Body of ``PATCH …/schedules/{id}``: the fields to change; ``active`` pauses/resumes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"active": False}})
    cron: str | None = Field(default=None, description="New cron expression.")
    interval: float | None = Field(default=None, gt=0, description="New interval, seconds.")
    anchorDate: str | None = Field(default=None, description="New RFC 3339 anchor.")
    timezone: str | None = Field(default=None, description="New IANA time zone.")
    active: bool | None = Field(default=None, description="False pauses, true resumes.")
    inputs: dict[str, Any] | None = Field(default=None, description="New input values.")
    outputs: dict[str, Any] | None = Field(default=None, description="New outputs selection.")
    subscriber: Subscriber | None = Field(default=None, description="New callbacks.")


class Schedule(BaseModel):
    """A reprocessing schedule of a process (a Prefect deployment schedule)."""

    id: str = Field(description="Schedule id (the Prefect deployment schedule id).")
    processID: str
    cron: str | None = None
    interval: float | None = Field(default=None, description="Seconds between runs.")
    anchorDate: str | None = None
    timezone: str
    active: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None
    subscriber: Subscriber | None = None
    created: str | None = None
    updated: str | None = None
    links: list[Link]


class ScheduleList(BaseModel):
    schedules: list[Schedule]
    links: list[Link]


class LogEntry(BaseModel):
    timestamp: str = Field(description="RFC 3339 time of the line.")
    level: str = Field(description="DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    source: str = Field(
        description="What logged it: `gateway`, `flow`, or the task "
        "(`stage-in`, `execute`, `stage-out`)."
    )
    logger: str
    message: str


class JobLogs(BaseModel):
    """A page of a job's log lines, oldest first (``GET /jobs/{id}/logs``)."""

    jobID: str
    logs: list[LogEntry]
    links: list[Link]
