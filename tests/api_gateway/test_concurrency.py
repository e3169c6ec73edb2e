"""Acceptance 6: a burst of 50 executions on the embedded SQLite default loses nothing.

The stock SQLite Prefect server answers such bursts with "database is locked"; the
gateway must absorb that: every request 201, every job successful and listed, no 5xx.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.ogc_schemas import validate
from tests.support import ECHO_CWL, deploy_cwl, poll, result_bytes

BURST = 50


@pytest.mark.timeout(600)
def test_fifty_concurrent_executions(api: str):
    deploy_cwl(api, ECHO_CWL)
    start = threading.Barrier(BURST)

    def submit(i: int) -> requests.Response:
        start.wait(timeout=30)
        return requests.post(
            f"{api}/processes/echo/execution",
            json={"inputs": {"message": f"burst-{i}"}, "response": "document"},
            headers={"Prefer": "respond-async"},
            timeout=300,
        )

    with ThreadPoolExecutor(BURST) as pool:
        responses = list(pool.map(submit, range(BURST)))

    codes = [r.status_code for r in responses]
    refused = [(r.status_code, r.text[:200]) for r in responses if r.status_code != 201]
    assert codes == [201] * BURST, refused
    job_ids = [r.json()["jobID"] for r in responses]
    assert len(set(job_ids)) == BURST
    for response in responses:
        assert response.headers["Location"] == f"{api}/jobs/{response.json()['jobID']}"

    session = requests.Session()
    server_errors: list[tuple[int, str]] = []

    def all_successful() -> bool:
        response = session.get(
            f"{api}/jobs", params={"limit": 1000, "processID": "echo"}, timeout=60
        )
        if response.status_code >= 500:
            server_errors.append((response.status_code, response.text[:200]))
        assert response.status_code == 200, response.text
        document = response.json()
        statuses = {job["jobID"]: job["status"] for job in document["jobs"]}
        assert "failed" not in statuses.values(), document
        return len(statuses) == BURST and set(statuses.values()) == {"successful"}

    poll(all_successful, timeout=300, interval=1.0, what=f"{BURST} successful jobs")
    assert server_errors == []

    document = session.get(f"{api}/jobs", params={"limit": 1000}, timeout=60).json()
    validate(document, "jobList")
    assert {job["jobID"] for job in document["jobs"]} == set(job_ids)
    # Each job ran its own inputs.
    sample = session.get(f"{api}/jobs/{job_ids[17]}/results", timeout=30).json()
    assert result_bytes(sample["said"]["href"]) == b"burst-17\n"
