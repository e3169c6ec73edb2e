"""core.ogc: one statusInfo builder for the gateway and for callbacks."""

from __future__ import annotations

import datetime as dt

from core.ogc import REL, status_info

T0 = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
API = "https://gw.example/alice/ogc-api"
JOB = "9a7c3f9e-1d2b-4c5e-8f00-0123456789ab"


def _rels(document: dict) -> list[str]:
    return [link["rel"] for link in document["links"]]


def test_the_fields_and_their_order():
    document = status_info(
        job_id=JOB,
        process_id="echo",
        status="running",
        message="job running",
        created=T0,
        started=T0 + dt.timedelta(seconds=1),
        updated=dt.datetime(
            2026, 1, 31, 13, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1))
        ),
        progress=150,
        jobs_url=f"{API}/jobs",
    )
    assert list(document) == [
        "processID",
        "type",
        "jobID",
        "status",
        "message",
        "created",
        "started",
        "updated",
        "progress",
        "links",
    ]
    assert document["type"] == "process"
    assert document["created"] == "2026-01-31T12:00:00.000Z"
    assert document["started"] == "2026-01-31T12:00:01.000Z"
    assert document["updated"] == "2026-01-31T12:00:00.123Z"
    assert document["progress"] == 100  # clipped to 0-100


def test_a_callback_document_links_only_to_the_job():
    document = status_info(
        job_id=JOB, process_id="echo", status="failed", message="boom", jobs_url=f"{API}/jobs"
    )
    assert document["links"] == [
        {
            "href": f"{API}/jobs/{JOB}",
            "rel": rel,
            "type": "application/json",
            "title": "job status",
        }
        for rel in ("self", "monitor")
    ]
    assert status_info(job_id=JOB, process_id=None, status="failed", message="")["links"] == []


def test_the_gateways_document_links_to_every_page_of_the_job():
    document = status_info(
        job_id=JOB,
        process_id="echo",
        status="successful",
        message="job finished",
        schedule_id="s-1",
        api_url=API,
        prefect_ui="http://127.0.0.1:4200",
    )
    assert document["scheduleID"] == "s-1"
    assert _rels(document) == [
        "self",
        "monitor",
        "alternate",
        f"{REL}/results",
        "up",
        "logs",
        "prefect-ui",
        "related",
    ]
    hrefs = {link["rel"]: link["href"] for link in document["links"]}
    assert hrefs["self"] == f"{API}/jobs/{JOB}"
    assert hrefs["alternate"] == f"{API}/jobs/{JOB}?f=html"
    assert hrefs[f"{REL}/results"] == f"{API}/jobs/{JOB}/results"
    assert hrefs["up"] == f"{API}/processes/echo"
    assert hrefs["logs"] == f"{API}/jobs/{JOB}/logs"
    assert hrefs["monitor"] == f"{API}/jobs/{JOB}"
    assert hrefs["prefect-ui"] == f"http://127.0.0.1:4200/runs/flow-run/{JOB}"
    assert hrefs["related"] == f"{API}/processes/echo/schedules/s-1"


def test_results_and_process_links_only_when_there_are_some():
    document = status_info(
        job_id=JOB, process_id=None, status="running", message="job running", api_url=API
    )
    assert _rels(document) == ["self", "monitor", "alternate", "logs"]
