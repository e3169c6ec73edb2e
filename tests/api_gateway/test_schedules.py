"""Reprocessing schedules: Prefect deployment schedules with the execute request as their
parameters, created, paused, resumed and deleted over the OGC API, against the real stack."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import requests

from tests.api_gateway.openapi_check import validate_response
from tests.conftest import Engine
from tests.ogc_schemas import validate
from tests.support import ECHO_CWL, assert_ogc_exception, deploy_cwl, poll

INTERVAL_S = 3
SCHEDULE_PATH = "/{user}/ogc-api/processes/{processId}/schedules"


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _prefect_schedules(engine: Engine, user: str, process_id: str) -> list[dict[str, Any]]:
    """The schedules of the process's deployment, read from Prefect's own API."""
    deployment = requests.get(
        f"{engine.prefect_api_url}/deployments/name/ogc-execute/{process_id}@{user}",
        auth=engine.prefect_auth,
        timeout=30,
    )
    assert deployment.status_code == 200, deployment.text
    schedules = requests.get(
        f"{engine.prefect_api_url}/deployments/{deployment.json()['id']}/schedules",
        auth=engine.prefect_auth,
        timeout=30,
    )
    assert schedules.status_code == 200, schedules.text
    return schedules.json()


def _scheduled_jobs(api: str, schedule_id: str, status: str | None = None) -> list[dict]:
    params: dict[str, Any] = {"processID": "echo", "limit": 1000}
    if status:
        params["status"] = status
    response = requests.get(f"{api}/jobs", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return [j for j in response.json()["jobs"] if j.get("scheduleID") == schedule_id]


def _settled(api: str, schedule_id: str) -> int:
    """Wait until no job of the schedule is queued or running; return how many there are."""

    def check() -> int | None:
        jobs = _scheduled_jobs(api, schedule_id)
        busy = [j for j in jobs if j["status"] in ("accepted", "running")]
        return None if busy else len(jobs) + 1  # +1: zero jobs is a valid answer

    return poll(check, timeout=60, interval=0.5, what="the schedule's jobs to settle") - 1


def test_interval_schedule_runs_pauses_resumes_and_deletes(engine: Engine, user: str, api: str):
    deploy_cwl(api, ECHO_CWL)
    body = {"interval": INTERVAL_S, "inputs": {"message": "tick"}, "timezone": "Europe/Rome"}
    created = requests.post(f"{api}/processes/echo/schedules", json=body, timeout=30)
    assert created.status_code == 201, created.text
    schedule = created.json()
    validate_response(f"{api}/api", SCHEDULE_PATH, "post", 201, schedule)
    sid = schedule["id"]
    assert created.headers["Location"] == f"{api}/processes/echo/schedules/{sid}"
    assert schedule["interval"] == INTERVAL_S and schedule["active"] is True
    assert schedule["inputs"] == {"message": "tick"} and schedule["timezone"] == "Europe/Rome"

    # The schedule is a schedule of the process's Prefect deployment, with the request.
    in_prefect = {s["id"]: s for s in _prefect_schedules(engine, user, "echo")}
    assert in_prefect[sid]["parameters"]["inputs"] == {"message": "tick"}
    assert in_prefect[sid]["schedule"]["interval"] == INTERVAL_S
    assert in_prefect[sid]["active"] is True

    # At least two scheduled runs reach `successful`, as normal jobs marked with the schedule.
    jobs = poll(
        lambda: (done := _scheduled_jobs(api, sid, "successful")) and len(done) >= 2 and done,
        timeout=90,
        interval=1,
        what="two successful scheduled jobs",
    )
    for job in jobs:
        validate(job, "statusInfo")
        validate_response(f"{api}/api", "/{user}/ogc-api/jobs/{jobId}", "get", 200, job)
        related = [link["href"] for link in job["links"] if link["rel"] == "related"]
        assert f"{api}/processes/echo/schedules/{sid}" in related
        # No execute request named a form for a scheduled job: the results document.
        results = requests.get(f"{api}/jobs/{job['jobID']}/results", timeout=30)
        assert results.status_code == 200 and "said" in results.json()
        # The worker started the run when its time had come, not when Prefect created it.
        run = requests.get(
            f"{engine.prefect_api_url}/flow_runs/{job['jobID']}",
            auth=engine.prefect_auth,
            timeout=30,
        )
        assert run.json()["auto_scheduled"] is True
        assert _instant(run.json()["start_time"]) >= _instant(run.json()["expected_start_time"])
        assert _instant(run.json()["created"]) < _instant(run.json()["expected_start_time"])
    # Upcoming runs Prefect holds ahead of their time are not jobs yet.
    assert all(j["status"] != "accepted" or j.get("started") is None for j in jobs)

    listed = requests.get(f"{api}/processes/echo/schedules", timeout=30)
    assert listed.status_code == 200
    validate_response(f"{api}/api", SCHEDULE_PATH, "get", 200, listed.json())
    assert [s["id"] for s in listed.json()["schedules"]] == [sid]

    # Paused: no new runs.
    paused = requests.patch(
        f"{api}/processes/echo/schedules/{sid}", json={"active": False}, timeout=30
    )
    assert paused.status_code == 200, paused.text
    validate_response(f"{api}/api", SCHEDULE_PATH + "/{scheduleId}", "patch", 200, paused.json())
    assert paused.json()["active"] is False
    assert {s["id"]: s for s in _prefect_schedules(engine, user, "echo")}[sid]["active"] is False
    before = _settled(api, sid)
    time.sleep(3 * INTERVAL_S)  # what must not happen has three intervals to happen
    assert len(_scheduled_jobs(api, sid)) == before

    # Resumed: runs again.
    resumed = requests.patch(
        f"{api}/processes/echo/schedules/{sid}", json={"active": True}, timeout=30
    )
    assert resumed.status_code == 200 and resumed.json()["active"] is True
    poll(
        lambda: len(_scheduled_jobs(api, sid, "successful")) > before,
        timeout=60,
        interval=1,
        what="a scheduled job after resuming",
    )

    # Deleted: gone from the API and from Prefect, and no new runs.
    deleted = requests.delete(f"{api}/processes/echo/schedules/{sid}", timeout=30)
    assert deleted.status_code == 204
    assert_ogc_exception(requests.get(f"{api}/processes/echo/schedules/{sid}", timeout=30), 404)
    assert sid not in {s["id"] for s in _prefect_schedules(engine, user, "echo")}
    before = _settled(api, sid)
    time.sleep(3 * INTERVAL_S)
    assert len(_scheduled_jobs(api, sid)) == before


def test_cron_schedule_read_and_change(api: str):
    deploy_cwl(api, ECHO_CWL)
    body = {"cron": "0 2 * * *", "timezone": "Europe/Rome", "inputs": {"message": "nightly"}}
    created = requests.post(f"{api}/processes/echo/schedules", json=body, timeout=30)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    read = requests.get(f"{api}/processes/echo/schedules/{sid}", timeout=30)
    assert read.status_code == 200
    validate_response(f"{api}/api", SCHEDULE_PATH + "/{scheduleId}", "get", 200, read.json())
    assert read.json()["cron"] == "0 2 * * *" and "interval" not in read.json()

    changed = requests.patch(
        f"{api}/processes/echo/schedules/{sid}",
        json={"cron": "30 3 * * 1", "inputs": {"message": "weekly"}},
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["cron"] == "30 3 * * 1"
    assert changed.json()["inputs"] == {"message": "weekly"}
    assert changed.json()["timezone"] == "Europe/Rome"

    # Replacing the process keeps its schedules.
    replaced = requests.put(
        f"{api}/processes/echo",
        data=ECHO_CWL.replace("label: Echo", "label: Echo 2").encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    assert replaced.status_code == 204, replaced.text
    kept = requests.get(f"{api}/processes/echo/schedules/{sid}", timeout=30)
    assert kept.status_code == 200 and kept.json()["active"] is True

    # A replacement that no longer accepts the schedule's inputs pauses it.
    renamed = ECHO_CWL.replace("  message:\n", "  text:\n")
    replaced = requests.put(
        f"{api}/processes/echo",
        data=renamed.encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    assert replaced.status_code == 204, replaced.text
    assert (
        requests.get(f"{api}/processes/echo/schedules/{sid}", timeout=30).json()["active"] is False
    )

    # Undeploying deletes the schedules with the deployment.
    assert requests.delete(f"{api}/processes/echo", timeout=30).status_code == 204
    deploy_cwl(api, ECHO_CWL)
    assert requests.get(f"{api}/processes/echo/schedules", timeout=30).json()["schedules"] == []


def test_schedule_errors_are_ogc_exceptions(api: str):
    deploy_cwl(api, ECHO_CWL)
    url = f"{api}/processes/echo/schedules"
    ok = {"inputs": {"message": "x"}}
    for body in (
        {**ok},  # neither cron nor interval
        {**ok, "cron": "0 2 * * *", "interval": 60},
        {**ok, "cron": "not a cron"},
        {**ok, "interval": 60, "timezone": "Mars/Olympus"},
        {**ok, "interval": 0.5},  # below OAPIP_SCHEDULE_MIN_INTERVAL_S
        {"interval": 60, "inputs": {"nope": 1}},  # validated like execute
        {**ok, "interval": 60, "unknown": 1},
    ):
        assert_ogc_exception(requests.post(url, json=body, timeout=30), 400)
    assert_ogc_exception(
        requests.post(f"{api}/processes/absent/schedules", json={**ok, "interval": 60}, timeout=30),
        404,
    )
    missing = "00000000-0000-0000-0000-000000000000"
    assert_ogc_exception(requests.get(f"{url}/{missing}", timeout=30), 404)
    assert_ogc_exception(
        requests.patch(f"{url}/{missing}", json={"active": False}, timeout=30), 404
    )
    assert_ogc_exception(requests.delete(f"{url}/{missing}", timeout=30), 404)
    created = requests.post(url, json={**ok, "interval": 60, "active": False}, timeout=30)
    assert created.status_code == 201 and created.json()["active"] is False
    assert_ogc_exception(requests.patch(f"{url}/{created.json()['id']}", json={}, timeout=30), 400)
