"""Shape OGC JSON documents (and their HTML pages) from the adapter's records."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api_gateway.builtins import is_builtin
from api_gateway.deps import OgcContext
from core import ogc
from core.naming import result_file_url
from core.ogc import REL
from core.times import format_time
from ogc_prefect import JobRecord, LogRecord, ProcessRecord, ScheduleRecord

__all__ = [
    "CONFORMANCE",
    "job_list",
    "job_logs",
    "job_logs_text",
    "landing_page",
    "process_description",
    "process_list",
    "process_summary",
    "render",
    "result_folder",
    "result_media_type",
    "schedule",
    "schedule_list",
    "status_info",
]

_P1 = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
_P2 = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf"
CONFORMANCE = [
    f"{_P1}/core",
    f"{_P1}/ogc-process-description",
    f"{_P1}/json",
    f"{_P1}/html",
    f"{_P1}/oas30",
    f"{_P1}/job-list",
    f"{_P1}/dismiss",
    f"{_P1}/callback",
    f"{_P2}/deploy-replace-undeploy",
    f"{_P2}/ogcapppkg",
    f"{_P2}/cwl",
]
JOB_CONTROL = ["async-execute", "sync-execute", "dismiss"]
TRANSMISSION = ["value", "reference"]

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def render(
    ctx: OgcContext, template: str, document: dict[str, Any], status: int = 200, **extra: Any
):
    """The document as JSON, or as an HTML page when the client asks for HTML."""
    if ctx.wants_html():
        page = _templates.get_template(template).render(doc=document, ctx=ctx, **extra)
        return HTMLResponse(page, status_code=status)
    return JSONResponse(document, status_code=status)


def _alternates(href: str, title: str) -> list[dict[str, str]]:
    return [
        {"href": href, "rel": "self", "type": "application/json", "title": title},
        {
            "href": f"{href}?f=html",
            "rel": "alternate",
            "type": "text/html",
            "title": f"{title} (HTML)",
        },
    ]


def landing_page(ctx: OgcContext) -> dict[str, Any]:
    base = ctx.base
    wps = base.removesuffix("/ogc-api") + "/wps"
    return {
        "title": "OGC API - Processes on Prefect",
        "description": "Deploy, run and monitor CWL application packages (OGC API - Processes "
        "Part 1 and Part 2), orchestrated by Prefect.",
        "links": [
            *_alternates(base + "/", "this document"),
            {
                "href": f"{ctx.root}/api",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
                "title": "the API definition",
            },
            {
                "href": f"{ctx.root}/swagger-ui/oapip/",
                "rel": "service-doc",
                "type": "text/html",
                "title": "the API documentation (Swagger UI)",
            },
            {
                "href": f"{base}/conformance",
                "rel": f"{REL}/conformance",
                "type": "application/json",
                "title": "conformance classes",
            },
            {
                "href": f"{base}/processes",
                "rel": f"{REL}/processes",
                "type": "application/json",
                "title": "processes",
            },
            {
                "href": f"{base}/jobs",
                "rel": f"{REL}/job-list",
                "type": "application/json",
                "title": "jobs",
            },
            *(
                {
                    "href": f"{wps}?service=WPS&request=GetCapabilities&AcceptVersions={version}",
                    "rel": "related",
                    "type": "text/xml",
                    "title": f"the same processes and jobs through OGC WPS {version}",
                }
                for version in ("1.0.0", "2.0.0")
            ),
            {"href": ctx.prefect_ui, "rel": "related", "type": "text/html", "title": "Prefect UI"},
        ],
    }


def process_summary(ctx: OgcContext, record: ProcessRecord) -> dict[str, Any]:
    d = record.description
    href = f"{ctx.base}/processes/{record.process_id}"
    summary: dict[str, Any] = {
        "id": record.process_id,
        "title": d.get("title") or record.process_id,
        "description": d.get("description") or "",
        "version": str(d.get("version") or "1.0.0"),
        "jobControlOptions": JOB_CONTROL,
        "outputTransmission": TRANSMISSION,
        "mutable": not is_builtin(ctx.request.app.state, record),
        "links": [
            {
                "href": href,
                "rel": "self",
                "type": "application/json",
                "title": "process description",
            },
            {
                "href": f"{href}?f=html",
                "rel": "alternate",
                "type": "text/html",
                "title": "process description (HTML)",
            },
            {"href": f"{href}/execution", "rel": f"{REL}/execute", "title": "execute"},
            {
                "href": f"{href}/package",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/application-package",
                "type": "application/cwl+json",
                "title": "application package",
            },
        ],
    }
    if d.get("keywords"):
        summary["keywords"] = list(d["keywords"])
    return summary


def process_list(
    ctx: OgcContext, records: list[ProcessRecord], *, offset: int, limit: int, more: bool
) -> dict[str, Any]:
    """A page of the process list: ``limit`` processes from ``offset``, ``next``/``prev``
    links like the job list's."""

    def page(at: int) -> str:
        return f"{ctx.base}/processes?{urlencode({'limit': limit, 'offset': at})}"

    links = [
        {"href": page(offset), "rel": "self", "type": "application/json", "title": "processes"},
        {
            "href": f"{page(offset)}&f=html",
            "rel": "alternate",
            "type": "text/html",
            "title": "processes (HTML)",
        },
    ]
    links += _paging_links(page, offset=offset, limit=limit, more=more)
    return {"processes": [process_summary(ctx, r) for r in records], "links": links}


def process_description(ctx: OgcContext, record: ProcessRecord) -> dict[str, Any]:
    document = process_summary(ctx, record)
    document["inputs"] = record.description.get("inputs", {})
    document["outputs"] = record.description.get("outputs", {})
    return document


def status_info(ctx: OgcContext, record: JobRecord) -> dict[str, Any]:
    """The job's ``statusInfo`` as the gateway serves it, with links to its pages."""
    return ogc.status_info(**asdict(record), api_url=ctx.base, prefect_ui=ctx.prefect_ui)


def job_list(
    ctx: OgcContext,
    records: list[JobRecord],
    *,
    query: dict[str, Any],
    offset: int,
    limit: int,
    more: bool,
) -> dict[str, Any]:
    def page(at: int) -> str:
        params = {k: v for k, v in query.items() if k not in ("offset", "f")}
        params.update({"limit": limit, "offset": at})
        return f"{ctx.base}/jobs?{urlencode(params, doseq=True)}"

    links = [
        {"href": page(offset), "rel": "self", "type": "application/json", "title": "this page"}
    ]
    links += _paging_links(page, offset=offset, limit=limit, more=more)
    return {"jobs": [status_info(ctx, r) for r in records], "links": links}


def schedule(ctx: OgcContext, record: ScheduleRecord) -> dict[str, Any]:
    """A reprocessing schedule document (``Schedule`` in ``/api``)."""
    spec = record.spec
    process = f"{ctx.base}/processes/{record.process_id}"
    href = f"{process}/schedules/{record.schedule_id}"
    document: dict[str, Any] = {
        "id": record.schedule_id,
        "processID": record.process_id,
        "timezone": spec.timezone,
        "active": spec.active,
        "inputs": spec.inputs,
    }
    if spec.cron is not None:
        document["cron"] = spec.cron
    if spec.interval_s is not None:
        document["interval"] = spec.interval_s
        if spec.anchor is not None:
            document["anchorDate"] = format_time(spec.anchor)
    if spec.outputs:
        document["outputs"] = spec.outputs
    if spec.subscriber:
        document["subscriber"] = spec.subscriber
    for key in ("created", "updated"):
        value = format_time(getattr(record, key))
        if value:
            document[key] = value
    document["links"] = [
        {"href": href, "rel": "self", "type": "application/json", "title": "this schedule"},
        {"href": process, "rel": "up", "type": "application/json", "title": "process"},
        {
            "href": f"{ctx.base}/jobs?processID={record.process_id}",
            "rel": f"{REL}/job-list",
            "type": "application/json",
            "title": "jobs of this process",
        },
        {
            "href": f"{ctx.prefect_ui}/deployments/deployment/{record.deployment_id}",
            "rel": "related",
            "type": "text/html",
            "title": "the schedule on its deployment in the Prefect UI",
        },
    ]
    return document


def schedule_list(
    ctx: OgcContext, process_id: str, records: list[ScheduleRecord]
) -> dict[str, Any]:
    href = f"{ctx.base}/processes/{process_id}/schedules"
    return {
        "schedules": [schedule(ctx, r) for r in records],
        "links": [
            {"href": href, "rel": "self", "type": "application/json", "title": "schedules"},
            {
                "href": f"{ctx.base}/processes/{process_id}",
                "rel": "up",
                "type": "application/json",
                "title": "process",
            },
        ],
    }


def _level(level: int) -> str:
    return {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}.get(
        level, f"LEVEL{level}"
    )


def job_logs(
    ctx: OgcContext,
    job_id: str,
    records: list[LogRecord],
    *,
    offset: int,
    limit: int,
    more: bool,
) -> dict[str, Any]:
    """A page of a job's logs (``JobLogs`` in ``/api``) with ``next``/``prev`` links."""
    job = f"{ctx.base}/jobs/{job_id}"

    def page(at: int) -> str:
        return f"{job}/logs?{urlencode({'limit': limit, 'offset': at})}"

    links = [
        {"href": page(offset), "rel": "self", "type": "application/json", "title": "this page"},
        {
            "href": f"{page(offset)}&f=text",
            "rel": "alternate",
            "type": "text/plain",
            "title": "this page as text",
        },
        {"href": job, "rel": "up", "type": "application/json", "title": "job status"},
    ]
    links += _paging_links(page, offset=offset, limit=limit, more=more)
    return {
        "jobID": job_id,
        "logs": [
            {
                "timestamp": format_time(r.timestamp),
                "level": _level(r.level),
                "source": r.source,
                "logger": r.logger,
                "message": r.message,
            }
            for r in records
        ],
        "links": links,
    }


def result_media_type(path: Path) -> str:
    """The media type a result file is served with, from its name."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def result_folder(ctx: OgcContext, job_id: str, relative: str, folder: Path) -> dict[str, Any]:
    """A folder of a job's results (``relative`` below them): its URL and every file in
    it, as the results document gives a Directory output."""
    base = relative.strip("/")
    jobs_url = f"{ctx.base}/jobs"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {
        "href": result_file_url(jobs_url, job_id, base).rstrip("/") + "/",
        "type": "application/x-directory",
        "files": [
            {
                "href": result_file_url(
                    jobs_url, job_id, f"{base}/{p.relative_to(folder).as_posix()}"
                ),
                "type": result_media_type(p),
            }
            for p in files
        ],
    }


def job_logs_text(document: dict[str, Any]) -> str:
    """The lines of a ``job_logs`` document as plain text, one log line per line."""
    return "".join(
        f"{e['timestamp']} {e['level']:<7} [{e['source']}] {e['message']}\n"
        for e in document["logs"]
    )


def _paging_links(
    page: Callable[[int], str], *, offset: int, limit: int, more: bool
) -> list[dict[str, str]]:
    """``next``/``prev`` links of a page of ``limit`` items at ``offset``; ``page(at)``
    is the URL of the page starting at item ``at``."""
    links = []
    if more:
        links.append(
            {
                "href": page(offset + limit),
                "rel": "next",
                "type": "application/json",
                "title": "next page",
            }
        )
    if offset > 0:
        links.append(
            {
                "href": page(max(0, offset - limit)),
                "rel": "prev",
                "type": "application/json",
                "title": "previous page",
            }
        )
    return links
