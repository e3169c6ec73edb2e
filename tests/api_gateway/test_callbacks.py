"""Callbacks (OGC Part 1 *callback*): a loopback receiver gets the in-progress status, the
results on success and the status on failure; a receiver that is down or failing gets
retried, and the job still ends normally with the failed delivery in its logs."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.conftest import free_port
from tests.ogc_schemas import validate
from tests.support import (
    ECHO_CWL,
    FAILING_WORKFLOW_CWL,
    assert_ogc_exception,
    deploy_cwl,
    poll,
    wait_for_status,
)


@dataclass
class Receiver:
    """A loopback HTTP server that records the JSON bodies POSTed to each path."""

    url: str
    received: dict[str, list[Any]] = field(default_factory=dict)
    failures_left: dict[str, int] = field(default_factory=dict)  # path -> 503s to answer first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscriber(self, name: str) -> dict[str, str]:
        return {
            "successUri": f"{self.url}/{name}/success",
            "inProgressUri": f"{self.url}/{name}/in-progress",
            "failedUri": f"{self.url}/{name}/failed",
        }

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.received.get(path, []))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with state.lock:
                if state.failures_left.get(self.path, 0) > 0:
                    state.failures_left[self.path] -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                state.received.setdefault(self.path, []).append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _execute(api: str, process_id: str, inputs: dict, subscriber: dict) -> str:
    response = requests.post(
        f"{api}/processes/{process_id}/execution",
        # The results document: what the success callback is sent, to compare with.
        json={"inputs": inputs, "subscriber": subscriber, "response": "document"},
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def _logs_text(job_url: str) -> str:
    response = requests.get(f"{job_url}/logs", params={"f": "text"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def test_success_and_in_progress_callbacks(api: str, user: str, receiver: Receiver):
    deploy_cwl(api, ECHO_CWL)
    job_url = _execute(api, "echo", {"message": "hello"}, receiver.subscriber(user))
    job = wait_for_status(job_url, timeout=90)
    assert job["status"] == "successful", job

    results = poll(
        lambda: receiver.bodies(f"/{user}/success"), timeout=60, what="the success callback"
    )
    assert len(results) == 1
    validate(results[0], "results")
    expected = requests.get(f"{job_url}/results", timeout=30).json()
    assert results[0] == expected
    running = receiver.bodies(f"/{user}/in-progress")
    assert len(running) == 1, running
    validate(running[0], "statusInfo")
    assert running[0]["jobID"] == job["jobID"] and running[0]["status"] == "running"
    assert running[0]["links"][0]["href"] == job_url
    assert receiver.bodies(f"/{user}/failed") == []


def test_failure_callback(api: str, user: str, receiver: Receiver):
    deploy_cwl(api, FAILING_WORKFLOW_CWL)
    job_url = _execute(api, "two-steps", {"word": "hi"}, receiver.subscriber(user))
    job = wait_for_status(job_url, timeout=90)
    assert job["status"] == "failed", job
    failed = poll(
        lambda: receiver.bodies(f"/{user}/failed"), timeout=60, what="the failure callback"
    )
    validate(failed[0], "statusInfo")
    assert failed[0]["status"] == "failed" and failed[0]["jobID"] == job["jobID"]
    assert failed[0]["message"]
    assert receiver.bodies(f"/{user}/success") == []


def test_failing_receiver_is_retried(api: str, user: str, receiver: Receiver):
    deploy_cwl(api, ECHO_CWL)
    receiver.failures_left[f"/{user}/success"] = 2
    job_url = _execute(api, "echo", {"message": "again"}, receiver.subscriber(user))
    assert wait_for_status(job_url, timeout=90)["status"] == "successful"
    poll(lambda: receiver.bodies(f"/{user}/success"), timeout=60, what="the retried callback")
    logs = poll(
        lambda: (text := _logs_text(job_url)) and "callback delivered" in text and text,
        timeout=30,
        what="the delivery in the job's logs",
    )
    assert "HTTP 503" in logs and "retrying" in logs


def test_receiver_down_does_not_affect_the_job(api: str):
    deploy_cwl(api, ECHO_CWL)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    subscriber = {"successUri": f"{down}/success", "inProgressUri": f"{down}/progress"}
    job_url = _execute(api, "echo", {"message": "nobody listens"}, subscriber)
    job = wait_for_status(job_url, timeout=90)
    assert job["status"] == "successful", job
    assert requests.get(f"{job_url}/results", timeout=30).status_code == 200
    # Every attempt is in the job's logs, and the final failure says so.
    logs = poll(
        lambda: (
            (text := _logs_text(job_url))
            and "success callback" in text
            and "failed after" in text
            and text
        ),
        timeout=60,
        what="the failed delivery in the job's logs",
    )
    assert "in-progress callback" in logs and "retrying" in logs
    assert requests.get(job_url, timeout=30).json()["status"] == "successful"


def test_subscriber_uris_must_be_http(api: str):
    deploy_cwl(api, ECHO_CWL)
    response = requests.post(
        f"{api}/processes/echo/execution",
        json={"inputs": {"message": "x"}, "subscriber": {"successUri": "file:///etc/passwd"}},
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert_ogc_exception(response, 400)
