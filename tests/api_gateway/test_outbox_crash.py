"""The job outbox under a crash: the gateway SIGKILLed in the middle of a burst of submits
and restarted. Every jobID that got a 201 ends ``successful``, with exactly one flow run."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import Engine, FileServer, _environment, _running_engine
from tests.support import ECHO_CWL, FINAL, deploy_cwl, poll, wait_for_status

pytestmark = pytest.mark.timeout(900)

JOBS = 300
CLIENTS = 50
KILL_AFTER = 100  # 201s before the gateway is killed


@pytest.fixture(scope="module")
def crash_engine(
    tmp_path_factory: pytest.TempPathFactory, tool_bin: Path, file_server: FileServer
) -> Iterator[Engine]:
    """An engine of this test alone: its gateway is killed."""
    with _running_engine("outbox-crash", tmp_path_factory.mktemp("oapip-crash"), tool_bin) as e:
        yield e


def _runs_by_key(engine: Engine, keys: list[str]) -> dict[str, list[str]]:
    """Flow runs of the jobs ``keys`` in Prefect: jobID → final state types."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey
    from prefect.settings import temporary_settings

    async def read() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {k: [] for k in keys}
        with temporary_settings(updates=engine.prefect_settings()):
            async with get_client() as client:
                for at in range(0, len(keys), 100):
                    runs = await client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(
                            idempotency_key=FlowRunFilterIdempotencyKey(any_=keys[at : at + 100])
                        ),
                        limit=200,
                    )
                    for run in runs:
                        found[run.idempotency_key].append(run.state_type.value)
        return found

    return asyncio.run(read())


def test_gateway_killed_mid_burst(crash_engine: Engine):
    api = crash_engine.api(f"crash-{uuid.uuid4().hex[:6]}")
    deploy_cwl(api, ECHO_CWL)
    accepted: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def submit(i: int) -> None:
        try:
            response = requests.post(
                f"{api}/processes/echo/execution",
                json={"inputs": {"message": f"m{i}"}},
                headers={"Prefer": "respond-async"},
                timeout=30,
            )
        except requests.ConnectionError:
            return  # the gateway was down: this submit was never accepted
        if response.status_code == 201:
            assert response.json()["status"] == "accepted"
            with lock:
                accepted.append(response.json()["jobID"])
                if len(accepted) == KILL_AFTER and not killed.is_set():
                    killed.set()
                    crash_engine.stack.kill("gateway")

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(submit, range(JOBS)))
    assert killed.is_set()
    with _environment(crash_engine.env or {}):
        crash_engine.stack.start_gateway()
    # Submits after the restart are accepted too.
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(submit, range(JOBS, JOBS + 50)))

    statuses: dict[str, str] = {}

    def all_ended() -> bool:
        for job_id in accepted:
            if statuses.get(job_id) not in FINAL:
                response = requests.get(f"{api}/jobs/{job_id}", timeout=30)
                assert response.status_code == 200, response.text
                statuses[job_id] = response.json()["status"]
                if statuses[job_id] not in FINAL:
                    return False
        return True

    poll(all_ended, timeout=600, interval=1.0, what="every accepted job to end")
    assert set(statuses.values()) == {"successful"}, statuses
    runs = _runs_by_key(crash_engine, accepted)
    assert {k: v for k, v in runs.items() if v != ["COMPLETED"]} == {}


def test_jobs_wait_in_the_outbox_while_prefect_is_down(crash_engine: Engine):
    """Submits are accepted with Prefect down; such a job reads ``accepted`` and can be
    dismissed (it never reaches Prefect); the others run once Prefect is back."""
    api = crash_engine.api(f"down-{uuid.uuid4().hex[:6]}")
    deploy_cwl(api, ECHO_CWL)
    stack = crash_engine.stack
    stack.stop_one("prefect-server")
    try:
        jobs = []
        for i in range(3):
            response = requests.post(
                f"{api}/processes/echo/execution",
                json={"inputs": {"message": f"m{i}"}},
                headers={"Prefer": "respond-async"},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            body = response.json()
            assert body["status"] == "accepted"
            assert not [link for link in body["links"] if link["rel"] == "prefect-ui"]  # no run yet
            jobs.append(body["jobID"])
        assert requests.get(f"{api}/jobs/{jobs[0]}", timeout=30).json()["status"] == "accepted"
        # (The job list reads Prefect too: while it is down, /jobs answers 503.)
        dismissed = requests.delete(f"{api}/jobs/{jobs[0]}", timeout=30)
        assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    finally:
        with _environment(crash_engine.env or {}):
            stack.start_server()
    for job_id in jobs[1:]:
        body = wait_for_status(f"{api}/jobs/{job_id}", FINAL, timeout=300)
        assert body["status"] == "successful", body
        assert any(link["rel"] == "prefect-ui" for link in body["links"])
    assert requests.get(f"{api}/jobs/{jobs[0]}", timeout=30).status_code == 404
    assert _runs_by_key(crash_engine, jobs) == {
        jobs[0]: [],
        jobs[1]: ["COMPLETED"],
        jobs[2]: ["COMPLETED"],
    }
