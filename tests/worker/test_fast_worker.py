"""The fast worker: dismiss and crashes end a job's whole process group, no orphans.

Jobs run a tool that sleeps a figure no other process uses, so the test finds exactly
that job's processes with psutil: the tool (``sleep <figure>``, its working directory
under ``<OAPIP_HOME>/jobs/<jobID>/``) and its parent, the job process forked from the
zygote, which runs cwltool in-process.
"""

from __future__ import annotations

import os
import random
import time

import psutil
import pytest
import requests

from core.naming import WORKER_ALIVE_FILE
from tests.conftest import BOTH_ENGINES, Engine
from tests.ogc_schemas import validate
from tests.support import (
    ECHO_CWL,
    deploy_cwl,
    execute_async,
    flow_run_id,
    poll,
    sleep_cwl,
    wait_for_status,
)
from worker.fast import HEARTBEAT_S


def _figure() -> str:
    """A sleep duration (seconds) long enough to outlast the test and unique to it."""
    return f"{random.randint(40, 90)}.{random.randint(10**6, 10**7 - 1)}"


def _sleepers(figure: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] == ["sleep", figure]:
            found.append(process)
    return found


def _job_processes(job_id: str) -> list[psutil.Process]:
    """Every process whose command line or working directory names the job."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd", "status"]):
        if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        where = " ".join(process.info["cmdline"] or []) + " " + (process.info["cwd"] or "")
        if job_id in where:
            found.append(process)
    return found


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_sleeper(api: str, figure: str) -> tuple[str, str, psutil.Process, psutil.Process]:
    """Deploy and start a sleeping job; wait until its tool runs."""
    deploy_cwl(api, sleep_cwl("sleeper", figure))
    created = execute_async(api, "sleeper", {})
    assert created.status_code == 201, created.text
    job_url = created.headers["Location"]
    job_id = created.json()["jobID"]
    wait_for_status(job_url, ["running"], timeout=60)
    (tool,) = poll(lambda: _sleepers(figure), timeout=30, what=f"sleep {figure} running")
    assert job_id in tool.cwd(), tool.cwd()
    return job_url, job_id, tool, tool.parent()


@BOTH_ENGINES
def test_dismiss_a_running_job_leaves_no_process(any_engine: Engine, user: str):
    api = any_engine.api(user)
    figure = _figure()
    job_url, job_id, tool, job_process = _start_sleeper(api, figure)
    assert os.getpgid(tool.pid) == job_process.pid  # the job leads its own group

    response = requests.delete(job_url, timeout=30)
    assert response.status_code == 200, response.text
    status = response.json()
    validate(status, "statusInfo")
    assert status["status"] == "dismissed"
    assert status["jobID"] == job_id
    assert requests.get(job_url, timeout=30).json()["status"] == "dismissed"

    poll(lambda: not _alive(tool), timeout=30, what="the tool process gone")
    poll(lambda: not _alive(job_process), timeout=30, what="the job process gone")
    poll(lambda: not _job_processes(job_id), timeout=30, what=f"no process of job {job_id}")
    # Cancelled for good: `finished` appears once the run reaches its final state.
    final = poll(
        lambda: (
            (body := requests.get(job_url, timeout=30).json()).get("finished")
            and body["status"] == "dismissed"
            and body
        ),
        timeout=30,
        what="dismissed with a finished time",
    )
    validate(final, "statusInfo")
    assert final["status"] == "dismissed", final
    assert final["finished"] >= final["started"]
    jobs = requests.get(f"{api}/jobs", params={"status": "dismissed"}, timeout=30).json()
    assert [j["jobID"] for j in jobs["jobs"]] == [job_id]
    assert requests.get(f"{api}/jobs", params={"status": "failed"}, timeout=30).json()["jobs"] == []


def test_a_dismissed_job_never_passes_through_failed(engine: Engine, api: str):
    """Read from the flow run's state history: a poller can miss the short window."""
    figure = _figure()
    job_url, job_id, tool, _ = _start_sleeper(api, figure)
    try:
        assert requests.delete(job_url, timeout=30).status_code == 200
        poll(
            lambda: (
                (body := requests.get(job_url, timeout=30).json()).get("finished")
                and body["status"] == "dismissed"
            ),
            timeout=30,
            what="the dismissed job finished",
        )
        history = requests.get(
            f"{engine.prefect_api_url}/flow_run_states/",
            auth=engine.prefect_auth,
            params={
                "flow_run_id": flow_run_id(engine.prefect_api_url, job_id, engine.prefect_auth)
            },
            timeout=30,
        ).json()
        types = [s["type"] for s in sorted(history, key=lambda s: s["timestamp"])]
        assert types[-1] == "CANCELLED", types
        assert "CRASHED" not in types and "FAILED" not in types, types
    finally:
        for process in _sleepers(figure):
            process.kill()


@pytest.mark.parametrize("victim", ["job-process", "zygote"])
def test_a_crash_leaves_no_orphan_tool(api: str, victim: str):
    figure = _figure()
    job_url, job_id, tool, job_process = _start_sleeper(api, figure)
    try:
        # As the OOM killer would.
        (job_process if victim == "job-process" else job_process.parent()).kill()
        final = wait_for_status(job_url, ["failed"], timeout=30)
        assert "SIGKILL" in final["message"], final
        # The worker kills the group when the job process ends: the tool goes at once.
        poll(lambda: not _alive(tool), timeout=2, what="the tool of the crashed job gone")
    finally:
        for process in _sleepers(figure):
            process.kill()


def test_a_killed_zygote_fails_its_jobs_and_the_worker_recovers(api: str):
    figure = _figure()
    job_url, job_id, tool, job_process = _start_sleeper(api, figure)
    zygote = job_process.parent()
    assert "worker.zygote" in " ".join(zygote.cmdline())
    try:
        zygote.kill()
        final = wait_for_status(job_url, ["failed"], timeout=30)
        assert "killed" in final["message"] and "SIGKILL" in final["message"], final
        assert "finished" in final
        poll(lambda: not _alive(job_process), timeout=15, what="the job process gone")
    finally:
        for process in _sleepers(figure):
            process.kill()
    # A new zygote takes the next job.
    deploy_cwl(api, ECHO_CWL)
    created = execute_async(api, "echo", {"message": "again"})
    assert created.status_code == 201, created.text
    assert wait_for_status(created.headers["Location"], timeout=90)["status"] == "successful"


def test_a_crashed_job_does_not_touch_the_job_running_beside_it(api: str):
    """Two jobs from one zygote: killing one job's process fails that job only; the
    other's tool keeps running and its job ends successful."""
    figure = _figure()
    neighbour_figure = f"6.{random.randint(10**6, 10**7 - 1)}"
    job_url, _, tool, job_process = _start_sleeper(api, figure)
    try:
        deploy_cwl(api, sleep_cwl("neighbour", neighbour_figure))
        created = execute_async(api, "neighbour", {})
        assert created.status_code == 201, created.text
        neighbour_url = created.headers["Location"]
        (neighbour_tool,) = poll(
            lambda: _sleepers(neighbour_figure), timeout=30, what="the neighbour's tool"
        )
        job_process.kill()
        final = wait_for_status(job_url, ["failed"], timeout=30)
        assert "SIGKILL" in final["message"], final
        poll(lambda: not _alive(tool), timeout=2, what="the crashed job's tool gone")
        assert _alive(neighbour_tool), "the neighbour's tool went with the crashed job"
        neighbour = wait_for_status(neighbour_url, timeout=60)
        assert neighbour["status"] == "successful", neighbour
    finally:
        for process in _sleepers(figure) + _sleepers(neighbour_figure):
            process.kill()


def test_the_worker_shows_it_is_alive_for_a_liveness_probe(engine: Engine):
    """The Helm chart's liveness probe of the worker pod reads the age of this file."""
    alive = engine.home / WORKER_ALIVE_FILE
    poll(alive.exists, timeout=60, what=f"{alive} (worker log: {engine.log_tail()})")
    assert time.time() - alive.stat().st_mtime < 2 * HEARTBEAT_S
