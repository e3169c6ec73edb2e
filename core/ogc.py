"""OGC API - Processes documents built the same way wherever the engine sends them.

:func:`status_info` is a job's ``statusInfo``: the gateway serves it (``/jobs/{jobId}``,
the job list, an asynchronous execute answer) and the flow posts it to a subscriber's
callback URIs. Both give the same fields; only the links differ, because a callback's
receiver is another server that needs only the job's status URL.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from core.times import format_time

__all__ = ["PREFECT_UI_REL", "REL", "clean_message", "status_info", "timeout_message"]

REL = "http://www.opengis.net/def/rel/ogc/1.0"
# The relation of a job's link to its flow run in the Prefect UI (not `monitor`: OGC
# clients follow `monitor` to the job's status document).
PREFECT_UI_REL = "prefect-ui"
"""Prefix of the OGC link relations (``…/results``, ``…/job-list``, ``…/execute``)."""

_MESSAGE_MAX = 2000  # characters of a state message a status document carries
_PREFECT_PREFIXES = re.compile(
    r"^(Flow run encountered an exception|Task run encountered an exception)[^:]*:\s*"
    r"(\w+(Error|Failed|Exception|Cancelled)?:\s*)?"
)
# Prefect's words for a flow run stopped by its timeout, the carrier of a job's time limit.
_PREFECT_TIMEOUT = re.compile(r"^Flow run exceeded timeout of (\d+)(?:\.0+)? second\(s\)")


def timeout_message(seconds: int) -> str:
    """The message of a job stopped at its time limit of ``seconds``."""
    return (
        f"stopped: the job ran past its time limit of {seconds} s (OAPIP_MAX_JOB_SECONDS, "
        "or the sum of its tools' CWL ToolTimeLimit); its tools were killed and its remote "
        "runs cancelled"
    )


def clean_message(message: str | None) -> str:
    """A flow-run state message without Prefect's boilerplate prefix, at most 2000 characters.

    ``"Flow run encountered an exception: ToolFailed: step crop: exit 1"`` reads
    ``"step crop: exit 1"``: the OGC client wants the failure, not Prefect's wording. A run
    stopped by its Prefect timeout (the job's time limit) reads :func:`timeout_message`.
    """
    if not message:
        return ""
    message = message.strip()
    if timed_out := _PREFECT_TIMEOUT.match(message):
        return timeout_message(int(timed_out.group(1)))
    return _PREFECT_PREFIXES.sub("", message)[:_MESSAGE_MAX]


def status_info(
    *,
    job_id: str,
    process_id: str | None,
    status: str,
    message: str,
    created: dt.datetime | None = None,
    started: dt.datetime | None = None,
    finished: dt.datetime | None = None,
    updated: dt.datetime | None = None,
    progress: int | None = None,
    schedule_id: str | None = None,
    expires: dt.datetime | None = None,
    jobs_url: str = "",
    api_url: str | None = None,
    prefect_ui: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The OGC ``statusInfo`` of a job; times are RFC 3339 UTC, unset ones left out.

    Args:
        job_id, process_id, status, message: what the job is and how it stands
            (``status``: accepted, running, successful, failed or dismissed).
        created, started, finished, updated: the job's times.
        progress: 0-100 (clipped to that range).
        schedule_id: the reprocessing schedule that started the job, if one did.
        expires: when the retention policy removes the job's results (``expires``; no
            draft of Core 2.0 names this, so it takes the HTTP header's name).
        jobs_url: the job list URL; the document links to ``<jobs_url>/<job id>``
            (empty: no links).
        api_url: the OGC API tree the gateway serves the job from; given, the document
            also links to the job's HTML page, results, logs, process and schedule (and
            ``jobs_url`` defaults to ``<api_url>/jobs``).
        prefect_ui: the Prefect UI's URL; given, a ``prefect-ui`` link opens the job's flow
            run there (``monitor`` is the job's status, where OGC clients poll).
        run_id: the job's flow-run id (None: the job id itself; empty: no run yet, the
            job waits in the gateway's outbox, and no ``prefect-ui`` link).
    """
    if api_url is not None:
        jobs_url = jobs_url or f"{api_url}/jobs"
    document: dict[str, Any] = {
        "processID": process_id,
        "type": "process",
        "jobID": job_id,
        "status": status,
        "message": message,
    }
    times = {
        "created": created,
        "started": started,
        "finished": finished,
        "updated": updated,
        "expires": expires,
    }
    for key, value in times.items():
        if value is not None:
            document[key] = format_time(value)
    if progress is not None:
        document["progress"] = max(0, min(100, int(progress)))
    if schedule_id:
        document["scheduleID"] = schedule_id
    document["links"] = _status_links(
        job_id, process_id, status, schedule_id, jobs_url, api_url, prefect_ui, run_id
    )
    return document


def _status_links(
    job_id: str,
    process_id: str | None,
    status: str,
    schedule_id: str | None,
    jobs_url: str,
    api_url: str | None,
    prefect_ui: str | None,
    run_id: str | None = None,
) -> list[dict[str, str]]:
    if not jobs_url:
        return []
    href = f"{jobs_url}/{job_id}"
    # `monitor` is where an OGC client polls the job (the ETS follows it): its status.
    links = [
        {"href": href, "rel": "self", "type": "application/json", "title": "job status"},
        {"href": href, "rel": "monitor", "type": "application/json", "title": "job status"},
    ]
    if api_url is not None:
        links += _api_links(href, api_url, process_id, status)
    if prefect_ui is not None and run_id != "":
        links.append(
            {
                "href": f"{prefect_ui}/runs/flow-run/{run_id or job_id}",
                "rel": PREFECT_UI_REL,
                "type": "text/html",
                "title": "the job in the Prefect UI",
            }
        )
    if api_url is not None and schedule_id and process_id:
        links.append(
            {
                "href": f"{api_url}/processes/{process_id}/schedules/{schedule_id}",
                "rel": "related",
                "type": "application/json",
                "title": "the schedule that started this job",
            }
        )
    return links


def _api_links(
    href: str, api_url: str, process_id: str | None, status: str
) -> list[dict[str, str]]:
    """The links to the job's other pages on the gateway (``href``: its status URL)."""
    links = [
        {
            "href": f"{href}?f=html",
            "rel": "alternate",
            "type": "text/html",
            "title": "job status (HTML)",
        }
    ]
    if status == "successful":
        links.append(
            {
                "href": f"{href}/results",
                "rel": f"{REL}/results",
                "type": "application/json",
                "title": "results",
            }
        )
    if process_id:
        links.append(
            {
                "href": f"{api_url}/processes/{process_id}",
                "rel": "up",
                "type": "application/json",
                "title": "process",
            }
        )
    links.append(
        {"href": f"{href}/logs", "rel": "logs", "type": "application/json", "title": "job logs"}
    )
    return links
