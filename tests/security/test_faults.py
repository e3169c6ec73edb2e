"""Faults mid-job: the gateway restarted, the worker SIGKILLed, the Prefect server restarted.

Each scenario runs on an engine of these tests alone (``own_engine``) and checks that
every job ends in a terminal state with an honest message, that none is lost, and that
no tool process is left behind.
"""

from __future__ import annotations

import time
import uuid

import psutil
import pytest
import requests

from tests.conftest import Engine, _environment
from tests.support import (
    FINAL,
    deploy_cwl,
    execute_async,
    poll,
    sleep_cwl,
    wait_for_status,
)

# Starting this engine and restarting its Prefect server take minutes on a loaded machine.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def api(own_engine: Engine) -> str:
    return own_engine.api(f"faults-{uuid.uuid4().hex[:6]}")


def _marker() -> str:
    """A sleep length no other test uses, so its tool process can be found by name."""
    return f"{uuid.uuid4().int % 1000 / 1000 + 0.001:.3f}"


def _tools(marker: str) -> list[psutil.Process]:
    """Running processes whose command line holds ``marker`` (zombies excluded)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if marker in cmdline and "sleep" in cmdline and proc.info["status"] != "zombie":
            found.append(proc)
    return found


def _submit(api: str, process_id: str, seconds: str) -> str:
    deploy_cwl(api, sleep_cwl(process_id, seconds))
    response = execute_async(api, process_id, {"marker": "fault"})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def test_gateway_restarted_mid_job(own_engine: Engine, api: str):
    job_url = _submit(api, "nap", f"4{_marker()[1:]}")
    wait_for_status(job_url, ["running"], timeout=60)
    stack = own_engine.stack
    stack.stop_one("gateway")
    with _environment(own_engine.env or {}):
        stack.start_gateway()
    body = wait_for_status(job_url, FINAL, timeout=90)
    assert body["status"] == "successful", body["message"]


def test_worker_killed_mid_job(own_engine: Engine, api: str):
    marker = f"60{_marker()[1:]}"
    running_url = _submit(api, "long", marker)
    wait_for_status(running_url, ["running"], timeout=60)
    poll(lambda: _tools(marker), timeout=30, what="the job's tool process")

    stack = own_engine.stack
    stack.kill("worker")
    # The worker's zygote kills every job's process group when the worker dies.
    poll(lambda: not _tools(marker), timeout=30, what="no tool process left")
    # Submitted while no worker runs: must wait, not be lost.
    queued_url = _submit(api, "short", f"0.2{_marker()[2:]}")
    time.sleep(1)
    assert requests.get(queued_url, timeout=30).json()["status"] == "accepted"

    with _environment(own_engine.env or {}):
        stack.start_worker()
    crashed = wait_for_status(running_url, FINAL, timeout=90)
    assert crashed["status"] == "failed", crashed
    assert "worker" in crashed["message"] and "stopped" in crashed["message"], crashed
    finished = wait_for_status(queued_url, FINAL, timeout=90)
    assert finished["status"] == "successful", finished


def test_prefect_server_restarted_mid_job(own_engine: Engine, api: str):
    # One job ends while the server is down (it must record its end when it is back),
    # one runs across the restart.
    long_url = _submit(api, "across", f"15{_marker()[1:]}")
    wait_for_status(long_url, ["running"], timeout=60)
    short_url = _submit(api, "brief", f"3{_marker()[1:]}")
    wait_for_status(short_url, ["running", *FINAL], timeout=60)

    stack = own_engine.stack
    stack.stop_one("prefect-server")
    time.sleep(2)  # the short job ends while the server is away
    with _environment(own_engine.env or {}):
        stack.start_server()

    for url in (short_url, long_url):
        body = wait_for_status(url, FINAL, timeout=120)
        assert body["status"] == "successful", body["message"]
    # The worker still picks up new jobs (events or its poll safety net).
    after_url = _submit(api, "after", f"0.3{_marker()[2:]}")
    assert wait_for_status(after_url, FINAL, timeout=60)["status"] == "successful"
