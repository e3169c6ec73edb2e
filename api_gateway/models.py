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
    "LandingPage",
    "Link",
    "ProcessDescription",
    "ProcessList",
    "ProcessSummary",
    "Results",
    "StatusInfo",
    "Subscriber",
]


class Link(BaseModel):
    href: str
    rel: str | None = None
    type: str | None = None
    title: str | None = None


class Subscriber(BaseModel):
    model_config = ConfigDict(extra="allow")
    successUri: str | None = None
    inProgressUri: str | None = None
    failedUri: str | None = None


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
    response: Literal["raw", "document"] = Field(default="document")
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
