"""Job logs: ``GET /jobs/{id}/logs`` from Prefect's logs of the flow run and its tasks."""

from __future__ import annotations

import requests

from tests.api_gateway.openapi_check import validate_response
from tests.conftest import Engine
from tests.ogc_schemas import validate
from tests.support import (
    ECHO_CWL,
    FAILING_WORKFLOW_CWL,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    flow_run_id,
    poll,
    wait_for_status,
)

LOGS_PATH = "/{user}/ogc-api/jobs/{jobId}/logs"


def test_failed_job_logs_hold_the_tools_stderr(api: str, engine: Engine):
    deploy_cwl(api, FAILING_WORKFLOW_CWL)
    created = execute_async(api, "two-steps", {"word": "hi"})
    job_url = created.headers["Location"]
    job = wait_for_status(job_url, timeout=90)
    assert job["status"] == "failed", job

    # The status links to the logs and to the flow run in the Prefect UI.
    links = {link["rel"]: link["href"] for link in job["links"]}
    assert links["logs"] == f"{job_url}/logs"
    assert links["monitor"] == job_url
    run_id = flow_run_id(engine.prefect_api_url, job["jobID"], engine.prefect_auth)
    assert links["prefect-ui"].endswith(f"/runs/flow-run/{run_id}")

    # Task runs reach Prefect a moment after their log lines (the lean server records
    # them in batches); until then a line's source is only "task".
    def settled() -> requests.Response | None:
        response = requests.get(links["logs"], timeout=30)
        sources = {line["source"] for line in response.json().get("logs", [])}
        return response if {"stage-in", "execute"} <= sources else None

    response = poll(settled, timeout=30, what="the log lines with their task runs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    validate_response(f"{api}/api", LOGS_PATH, "get", 200, document)
    assert document["jobID"] == job["jobID"]
    messages = "\n".join(e["message"] for e in document["logs"])
    assert "boom" in messages, messages  # what the failing tool wrote to stderr
    sources = {e["source"] for e in document["logs"]}
    assert {"gateway", "stage-in", "execute"} <= sources, sources
    assert any(e["level"] == "ERROR" for e in document["logs"])

    text = requests.get(links["logs"], params={"f": "text"}, timeout=30)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "boom" in text.text and "[execute]" in text.text
    accept = requests.get(links["logs"], headers={"Accept": "text/plain"}, timeout=30)
    assert accept.headers["content-type"].startswith("text/plain") and "boom" in accept.text


def test_logs_are_paginated(api: str):
    deploy_cwl(api, ECHO_CWL)
    job_url = execute_async(api, "echo", {"message": "paged"}).headers["Location"]
    assert wait_for_status(job_url, timeout=90)["status"] == "successful"

    # Task runs reach Prefect a moment after their log lines (the lean server records
    # them in batches); until then a line's source is only "task".
    def settled() -> list | None:
        logs = requests.get(f"{job_url}/logs", timeout=30).json()["logs"]
        return logs if logs and all(line["source"] != "task" for line in logs) else None

    everything = poll(settled, timeout=30, what="the log lines with their task runs")
    assert len(everything) >= 3, everything

    seen, url = [], f"{job_url}/logs?limit=2"
    while url:
        page = requests.get(url, timeout=30).json()
        validate_response(f"{api}/api", LOGS_PATH, "get", 200, page)
        assert len(page["logs"]) <= 2
        seen.extend(page["logs"])
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert seen == everything
    second = requests.get(f"{job_url}/logs", params={"limit": 2, "offset": 2}, timeout=30).json()
    assert any(link["rel"] == "prev" for link in second["links"])


def test_logs_of_unknown_job(api: str, engine):
    missing = f"{api}/jobs/00000000-0000-0000-0000-000000000000/logs"
    body = assert_ogc_exception(requests.get(missing, timeout=30), 404)
    validate(body, "exception")
    # Another user's job answers like one that does not exist.
    deploy_cwl(api, ECHO_CWL)
    job_url = execute_async(api, "echo", {"message": "mine"}).headers["Location"]
    job_id = job_url.rsplit("/", 1)[1]
    other = requests.get(f"{engine.api('someone-else')}/jobs/{job_id}/logs", timeout=30)
    assert_ogc_exception(other, 404)
