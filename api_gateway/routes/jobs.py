"""Jobs: list, status, dismiss, results, logs."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse

from api_gateway.deps import ContextDep, JobsDep, LogsDep
from api_gateway.models import JobList, JobLogs, Results, StatusInfo
from api_gateway.results import present, render_results
from api_gateway.views import (
    job_list,
    job_logs,
    job_logs_text,
    render,
    result_folder,
    result_media_type,
    status_info,
)
from core.exceptions import InvalidParameter
from core.times import parse_time
from ogc_prefect import JobFilters

router = APIRouter(tags=["Jobs"])

_STATUSES = ("accepted", "running", "successful", "failed", "dismissed")
# A result file is the user's content served from the gateway's origin: never sniffed
# into HTML, and if it is HTML (or SVG), sandboxed: no script runs with the API's origin.
_RESULT_FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _instant(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise InvalidParameter(
            f"datetime {text!r} is not RFC 3339, e.g. 2026-01-31T12:00:00Z or an interval a/b"
        ) from None


def _interval(text: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    if not text:
        return None, None
    if "/" in text:
        start, _, end = text.partition("/")
        return _instant(start), _instant(end)
    instant = _instant(text)
    return instant, instant


@router.get("/jobs", response_model=JobList, summary="List the jobs")
async def list_jobs(
    ctx: ContextDep,
    jobs: JobsDep,
    processID: list[str] | None = Query(None, description="Only jobs of these processes."),
    status: list[str] | None = Query(None, description="Only jobs in these states."),
    type: list[str] | None = Query(None, description="Only jobs of this type (`process`)."),
    datetime: str | None = Query(None, description="Created at or in this RFC 3339 interval."),
    minDuration: float | None = Query(
        None, ge=0, description="Running for at least this, seconds."
    ),
    maxDuration: float | None = Query(None, ge=0, description="Running for at most this, seconds."),
    limit: int = Query(10, ge=1, le=1000, description="Jobs per page."),
    offset: int = Query(0, ge=0, description="Jobs to skip (paging)."),
):
    statuses = _split(status)
    unknown = [s for s in statuses if s not in _STATUSES]
    if unknown:
        raise InvalidParameter(f"unknown status {', '.join(unknown)}; use {', '.join(_STATUSES)}")
    after, before = _interval(datetime)
    query = {
        key: value
        for key, value in {
            "processID": processID,
            "status": status,
            "type": type,
            "datetime": datetime,
            "minDuration": minDuration,
            "maxDuration": maxDuration,
        }.items()
        if value is not None
    }
    types = _split(type)
    if types and "process" not in types:
        records, more = [], False
    else:
        filters = JobFilters(
            process_ids=_split(processID),
            statuses=statuses,
            created_after=after,
            created_before=before,
            min_duration_s=minDuration,
            max_duration_s=maxDuration,
            limit=limit,
            offset=offset,
        )
        records, more = await jobs.list_jobs(ctx.user, filters)
    document = job_list(ctx, records, query=query, offset=offset, limit=limit, more=more)
    return render(ctx, "jobs.html", document)


@router.get("/jobs/{jobId}", response_model=StatusInfo, summary="Status of a job")
async def get_job(jobId: str, ctx: ContextDep, jobs: JobsDep):
    record = await jobs.get_job(ctx.user, jobId)
    return render(ctx, "job.html", status_info(ctx, record))


@router.delete("/jobs/{jobId}", response_model=StatusInfo, summary="Dismiss a job")
async def dismiss_job(jobId: str, ctx: ContextDep, jobs: JobsDep):
    record = await jobs.dismiss(ctx.user, jobId)
    return JSONResponse(status_info(ctx, record))


@router.get(
    "/jobs/{jobId}/results",
    response_model=Results,
    summary="Results of a job",
    description="As the job's execute request asked (`response`, default `raw`): one output "
    "as its value, several as multipart/related, or the results document (`document`, also "
    "for jobs a schedule, the Prefect UI or WPS started).",
)
async def get_results(jobId: str, ctx: ContextDep, jobs: JobsDep):
    results = await jobs.results(ctx.user, jobId)
    response, outputs = await jobs.results_request(ctx.user, jobId)
    if ctx.wants_html():
        return render(ctx, "results.html", present(results, outputs), job_id=jobId)
    # As the execute request asked: `response` raw or document, its outputs selection.
    return render_results(results, response=response, outputs=outputs)


@router.get(
    "/jobs/{jobId}/results/{path:path}",
    summary="A file (or folder) of a job's results in the server's own result store",
    description="Where the results document of a job whose results stay on this server "
    "(the local result store, the embedded default) links each file: "
    "`…/jobs/{jobId}/results/{output id}/{file}`. A folder answers the list of its files "
    "(`href`, `type`, `files`). The same user checks as the job's (another user's job is "
    "404). Results on S3 keep their `s3://` URLs and are not served here.",
    responses={
        200: {
            "description": "The file, with the media type its name implies",
            "content": {"application/octet-stream": {}, "application/json": {}},
        }
    },
)
async def get_result_file(jobId: str, path: str, ctx: ContextDep, jobs: JobsDep):
    found = await jobs.result_path(ctx.user, jobId, path)
    if found.is_dir():
        return JSONResponse(result_folder(ctx, jobId, path, found))
    return FileResponse(found, media_type=result_media_type(found), headers=_RESULT_FILE_HEADERS)


@router.get(
    "/jobs/{jobId}/logs",
    response_model=JobLogs,
    summary="Log lines of a job (gateway, stage-in, tool output, stage-out)",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_job_logs(
    jobId: str,
    ctx: ContextDep,
    logs: LogsDep,
    limit: int = Query(200, ge=1, le=200, description="Lines per page."),
    offset: int = Query(0, ge=0, description="Lines to skip (paging)."),
    f: str | None = Query(None, description="`json` (default), `text` or `html`."),
):
    records, more = await logs.job_logs(ctx.user, jobId, limit=limit, offset=offset)
    document = job_logs(ctx, jobId, records, offset=offset, limit=limit, more=more)
    accept = ctx.request.headers.get("accept", "")
    if f == "text" or (f is None and accept.startswith("text/plain")):
        return PlainTextResponse(job_logs_text(document))
    return render(ctx, "logs.html", document)
