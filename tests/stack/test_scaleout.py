"""Prefect's production shape (``oapip up --prefect-replicas 2 --fast-workers 2``): two API
processes without services, one services process, Redis messaging, PostgreSQL; two fast
workers on one pool. A burst of jobs runs, each exactly once, shared by both workers."""

from __future__ import annotations

import asyncio
import random
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from core.naming import claimant
from tests.conftest import POSTGRES_DSN, Engine, FileServer, _running_engine
from tests.support import ECHO_CWL, FINAL, deploy_cwl, poll, wait_for_status

pytestmark = pytest.mark.timeout(1200)

JOBS = 120
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]


@pytest.fixture(scope="module")
def scaled_engine(
    tmp_path_factory: pytest.TempPathFactory, tool_bin: Path, file_server: FileServer
) -> Iterator[Engine]:
    database = f"oapip_scale_{uuid.uuid4().hex[:10]}"
    created = subprocess.run([*PSQL, f"CREATE DATABASE {database}"], capture_output=True, text=True)
    if created.returncode != 0:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is needed: {created.stderr.strip()}")
    # A Redis database of this engine alone (other stacks may use Redis too).
    redis_db = random.randint(8, 15)
    env = {
        "OAPIP_PREFECT_REPLICAS": "2",
        "OAPIP_FAST_WORKERS": "2",
        "OAPIP_USER_MAX_QUEUED": "0",  # one user's burst: no queue limit
        # Two slots a worker: the runs of a burst are created 100 at a time, far more than
        # one worker can hold, so the other must claim its share (with 8 slots, one worker
        # could drain the burst alone as the runs trickled in).
        "OAPIP_WORKER_SLOTS": "2",
        "OAPIP_REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
    }
    try:
        with _running_engine(
            "scaled",
            tmp_path_factory.mktemp("oapip-scaled"),
            tool_bin,
            POSTGRES_DSN.format(name=database),
            extra_env=env,
        ) as running:
            yield running
    finally:
        subprocess.run([*PSQL, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False)


def test_the_stack_has_the_production_shape(scaled_engine: Engine):
    stack = scaled_engine.stack
    assert {"prefect-server", "prefect-services", "worker", "worker-2"} <= set(stack.processes)
    server = stack.processes["prefect-server"]
    assert server.args[server.args.index("--workers") + 1] == "2"
    health = requests.get(f"{scaled_engine.prefect_api_url}/health", timeout=30)
    assert health.status_code == 200


def test_a_job_runs_and_reads_back(scaled_engine: Engine):
    api = scaled_engine.api("scaled-one")
    deploy_cwl(api, ECHO_CWL)
    response = requests.post(
        f"{api}/processes/echo/execution",
        json={"inputs": {"message": "hi"}},
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    body = wait_for_status(response.headers["Location"], FINAL, timeout=120)
    assert body["status"] == "successful", body
    listed = requests.get(f"{api}/jobs", timeout=30).json()["jobs"]
    assert [j["jobID"] for j in listed] == [body["jobID"]]


def _claims(engine: Engine, keys: list[str]) -> dict[str, list[tuple[str, int]]]:
    """For each jobID: its runs' claimants (one entry per run)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey
    from prefect.settings import temporary_settings

    async def read() -> dict[str, list[tuple[str, int]]]:
        found: dict[str, list[tuple[str, int]]] = {k: [] for k in keys}
        with temporary_settings(updates=engine.prefect_settings()):
            async with get_client() as client:
                for at in range(0, len(keys), 100):
                    key = FlowRunFilterIdempotencyKey(any_=keys[at : at + 100])
                    runs = await client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(idempotency_key=key), limit=200
                    )
                    for run in runs:
                        states = await client.read_flow_run_states(run.id)
                        claims = [c for s in states if (c := claimant(s.message))]
                        assert run.state_type.value == "COMPLETED", run.state
                        found[run.idempotency_key] += claims or [("unclaimed", 0)]
        return found

    return asyncio.run(read())


def test_a_burst_runs_every_job_once_on_both_workers(scaled_engine: Engine):
    api = scaled_engine.api("scaled-burst")
    deploy_cwl(api, ECHO_CWL)

    def submit(i: int) -> str:
        response = requests.post(
            f"{api}/processes/echo/execution",
            json={"inputs": {"message": f"m{i}"}},
            headers={"Prefer": "respond-async"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()["jobID"]

    with ThreadPoolExecutor(25) as pool:
        jobs = list(pool.map(submit, range(JOBS)))
    statuses: dict[str, str] = {}

    def all_ended() -> bool:
        for job_id in jobs:
            if statuses.get(job_id) not in FINAL:
                statuses[job_id] = requests.get(f"{api}/jobs/{job_id}", timeout=30).json()["status"]
                if statuses[job_id] not in FINAL:
                    return False
        return True

    poll(all_ended, timeout=900, interval=1.0, what="every job to end")
    assert Counter(statuses.values()) == {"successful": JOBS}
    claims = _claims(scaled_engine, jobs)
    assert {k: v for k, v in claims.items() if len(v) != 1} == {}  # one run, one claim each
    workers = Counter(c[0] for c in claims.values())
    assert len(workers) == 2, workers  # both workers took a share
