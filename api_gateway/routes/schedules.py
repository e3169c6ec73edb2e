"""Reprocessing schedules of a process: create, list, read, change (pause/resume), delete.

An extension of the process resource: ``/processes/{processId}/schedules``. Each schedule
is a schedule of the process's Prefect deployment; pausing and resuming is ``PATCH`` with
``{"active": false}`` / ``{"active": true}``.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api_gateway.deps import ContextDep, SchedulesDep
from api_gateway.models import Schedule, ScheduleCreate, ScheduleList, ScheduleUpdate
from api_gateway.views import render, schedule, schedule_list
from core.exceptions import InvalidParameter
from core.times import parse_time
from ogc_prefect import ScheduleSpec

router = APIRouter(prefix="/processes/{processId}/schedules", tags=["Schedules"])


def _anchor(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise InvalidParameter(
            f"anchorDate {text!r} is not RFC 3339, e.g. 2026-01-31T02:00:00Z"
        ) from None


@router.post(
    "",
    status_code=201,
    response_model=Schedule,
    summary="Create a reprocessing schedule",
    responses={201: {"description": "Schedule created; `Location` is its URL"}},
)
async def create_schedule(
    processId: str, body: ScheduleCreate, ctx: ContextDep, schedules: SchedulesDep
):
    spec = ScheduleSpec(
        cron=body.cron,
        interval_s=body.interval,
        timezone=body.timezone,
        anchor=_anchor(body.anchorDate),
        active=body.active,
        inputs=body.inputs,
        outputs=body.outputs,
        subscriber=body.subscriber.model_dump(exclude_none=True) if body.subscriber else None,
    )
    record = await schedules.create_schedule(ctx.user, processId, spec, jobs_url=f"{ctx.base}/jobs")
    document = schedule(ctx, record)
    return JSONResponse(
        document, status_code=201, headers={"Location": document["links"][0]["href"]}
    )


@router.get("", response_model=ScheduleList, summary="List a process's schedules")
async def list_schedules(processId: str, ctx: ContextDep, schedules: SchedulesDep):
    records = await schedules.list_schedules(ctx.user, processId)
    return render(ctx, "schedules.html", schedule_list(ctx, processId, records))


@router.get("/{scheduleId}", response_model=Schedule, summary="Read a schedule")
async def get_schedule(processId: str, scheduleId: str, ctx: ContextDep, schedules: SchedulesDep):
    record = await schedules.get_schedule(ctx.user, processId, scheduleId)
    return JSONResponse(schedule(ctx, record))


@router.patch(
    "/{scheduleId}",
    response_model=Schedule,
    summary='Change a schedule; `{"active": false}` pauses it, `true` resumes it',
)
async def update_schedule(
    processId: str, scheduleId: str, body: ScheduleUpdate, ctx: ContextDep, schedules: SchedulesDep
):
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidParameter(
            'nothing to change: send the fields to change, e.g. {"active": false}'
        )
    renames = {"interval": "interval_s", "anchorDate": "anchor"}
    changes = {renames.get(k, k): v for k, v in changes.items()}
    if "anchor" in changes:
        changes["anchor"] = _anchor(changes["anchor"])
    if changes.get("subscriber") is not None:
        changes["subscriber"] = body.subscriber.model_dump(exclude_none=True)  # type: ignore[union-attr]
    for key in ("active", "timezone", "inputs"):
        if key in changes and changes[key] is None:
            raise InvalidParameter(f"`{key}` cannot be null")
    record = await schedules.update_schedule(
        ctx.user, processId, scheduleId, changes, jobs_url=f"{ctx.base}/jobs"
    )
    return JSONResponse(schedule(ctx, record))


@router.delete("/{scheduleId}", status_code=204, summary="Delete a schedule")
async def delete_schedule(
    processId: str, scheduleId: str, ctx: ContextDep, schedules: SchedulesDep
):
    await schedules.delete_schedule(ctx.user, processId, scheduleId)
    return Response(status_code=204)
