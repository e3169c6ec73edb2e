"""The execution flow as Prefect users see it: one flow run per job, three task runs.

One job of the real convert-url package runs through the gateway; the tests then read
the Prefect server's own REST API (the data behind the Prefect UI).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import Engine
from tests.support import deploy_cwl, execute_async, flow_run_id, poll, wait_for_status


@dataclass
class Job:
    user: str
    job_id: str
    prefect: str  # the Prefect API URL
    auth: tuple[str, str]  # its credentials


@pytest.fixture(scope="module")
def job(app_packages: Path, engine: Engine, png_url: str) -> Job:
    user = f"flows-{uuid.uuid4().hex[:8]}"
    api = engine.api(user)
    deploy_cwl(
        api, (app_packages / "convert-url-app.cwl").read_text(), media_type="application/cwl"
    )
    created = execute_async(api, "convert-url", {"fn": "resize", "url": png_url, "size": "50%"})
    assert wait_for_status(created.headers["Location"], timeout=60)["status"] == "successful"
    return Job(user, created.json()["jobID"], engine.prefect_api_url, engine.prefect_auth)


def test_a_job_is_a_flow_run_of_the_process_deployment(job: Job):
    run_id = flow_run_id(job.prefect, job.job_id, job.auth)
    flow_run = requests.get(f"{job.prefect}/flow_runs/{run_id}", auth=job.auth, timeout=30).json()
    assert flow_run["idempotency_key"] == job.job_id
    assert f"job:{job.job_id}" in flow_run["tags"]
    assert flow_run["name"] == "convert-url"
    assert {f"user:{job.user}", "process:convert-url"} <= set(flow_run["tags"])
    assert flow_run["state_type"] == "COMPLETED"
    deployment = requests.get(
        f"{job.prefect}/deployments/{flow_run['deployment_id']}", auth=job.auth, timeout=30
    ).json()
    assert deployment["name"] == f"convert-url@{job.user}"
    assert f"user:{job.user}" in deployment["tags"]
    # The process's input schema is the deployment's parameter form in the Prefect UI.
    inputs = deployment["parameter_openapi_schema"]["properties"]["inputs"]
    assert set(inputs["properties"]) == {"fn", "url", "size"}


def test_a_job_has_three_task_runs(job: Job):
    def completed_task_runs() -> list[dict] | None:
        # Task-run states reach the server as events, recorded a moment after the flow ends.
        task_runs = requests.post(
            f"{job.prefect}/task_runs/filter",
            auth=job.auth,
            json={
                "flow_runs": {"id": {"any_": [flow_run_id(job.prefect, job.job_id, job.auth)]}},
                "sort": "EXPECTED_START_TIME_ASC",
            },
            timeout=30,
        ).json()
        done = len(task_runs) == 3 and all(t["state_type"] == "COMPLETED" for t in task_runs)
        return task_runs if done else None

    task_runs = poll(completed_task_runs, timeout=30, interval=0.5, what="3 completed task runs")
    assert [t["name"].rsplit("-", 1)[0] for t in task_runs] == ["stage-in", "execute", "stage-out"]


def test_the_tool_lines_are_in_the_flow_run_logs(job: Job):
    def tool_logged() -> bool:
        logs = requests.post(
            f"{job.prefect}/logs/filter",
            auth=job.auth,
            json={
                "logs": {"flow_run_id": {"any_": [flow_run_id(job.prefect, job.job_id, job.auth)]}},
                "limit": 200,
            },
            timeout=30,
        ).json()
        return any("convert.sh" in log["message"] for log in logs)

    poll(tool_logged, timeout=10, what="the tool's command line in the flow run's logs")
