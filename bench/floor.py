"""What Prefect itself costs on this machine: the floor under any engine built on it.

Two baselines, measured against the stack's own Prefect server in the same run:

* ``create_latency``: ``POST /deployments/{id}/create_flow_run`` straight to Prefect's REST
  API with the same concurrency as the submit-latency measurement. It is the one write an
  execute request must make while the job id is the flow-run id (docs/architecture.md §2).
  The runs go
  to a work pool no worker serves, so nothing runs meanwhile, and are deleted afterwards.
* ``bare_runs``: flow runs of a flow that does nothing but run three no-op tasks (the
  shape of every job: stage-in, execute, stage-out), created from a deployment and run
  to Completed with Prefect's own engine, ``slots`` at a time in this process: every
  Prefect write a job makes, without a tool, a gateway or a worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time
import uuid
from typing import Any

import requests
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from worker.zygote import quiet_console

FLOOR_POOL = "oapip-bench-floor"


@task(cache_policy=NO_CACHE, persist_result=False)
def _noop(phase: str) -> str:
    return phase


@flow(name="oapip-bench-floor", persist_result=False, validate_parameters=False)
def bare_flow() -> None:
    for phase in ("stage-in", "execute", "stage-out"):
        _noop(phase)


async def _deployment(api: str) -> uuid.UUID:
    """A deployment of ``bare_flow`` in a pool no worker serves."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(name=FLOOR_POOL, type="process"), overwrite=True
        )
        flow_id = await client.create_flow_from_name("oapip-bench-floor")
        return await client.create_deployment(
            flow_id=flow_id,
            name="floor",
            work_pool_name=FLOOR_POOL,
            entrypoint="bench/floor.py:bare_flow",
        )


def prefect_session() -> requests.Session:
    """A session that sends the stack's Prefect credentials (:func:`bench.history.prefect_auth`)."""
    from bench.history import prefect_auth

    session = requests.Session()
    session.auth = prefect_auth()
    return session


def _delete_runs(api: str, deployment_id: uuid.UUID) -> None:
    """Remove the deployment's runs (best effort: the figures are already taken)."""
    session = prefect_session()
    body = {"flow_runs": {"deployment_id": {"any_": [str(deployment_id)]}}, "limit": 200}
    try:
        while True:
            deleted = session.post(f"{api}/flow_runs/bulk_delete", json=body, timeout=120)
            deleted.raise_for_status()
            if not deleted.json()["deleted"]:
                return
    except requests.RequestException as exc:
        print(f"bench: the floor's runs were not all deleted: {exc}", flush=True)


def create_latency(api: str, clients: int, rounds: int = 4) -> tuple[list[float], int]:
    """Latencies of Prefect's create-flow-run call, ``clients`` at once, and errors."""
    deployment_id = asyncio.run(_deployment(api))
    url = f"{api}/deployments/{deployment_id}/create_flow_run"
    sessions = [prefect_session() for _ in range(clients)]

    def one(session: requests.Session) -> tuple[float, int]:
        t0 = time.perf_counter()
        r = session.post(
            url,
            json={"parameters": {}, "tags": ["oapip-bench"], "name": "floor"},
            timeout=120,
        )
        return time.perf_counter() - t0, r.status_code

    latencies, errors = [], 0
    try:
        for _ in range(rounds):
            with cf.ThreadPoolExecutor(clients) as pool:
                for elapsed, code in pool.map(one, sessions):
                    latencies.append(elapsed)
                    errors += code != 201
    finally:
        _delete_runs(api, deployment_id)
    return latencies, errors


def bare_runs(api: str, n: int, slots: int) -> tuple[float, int]:
    """Seconds for ``n`` bare flow runs, created at once and run ``slots`` at a time, and
    how many completed."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Pending

    deployment_id = asyncio.run(_deployment(api))

    async def create() -> list[Any]:
        async with get_client() as client:
            sem = asyncio.Semaphore(8)

            async def one() -> Any:
                async with sem:
                    return await client.create_flow_run_from_deployment(
                        deployment_id, parameters={}, tags=["oapip-bench"], name="floor"
                    )

            return await asyncio.gather(*(one() for _ in range(n)))

    def run(flow_run: Any) -> bool:
        from prefect.client.orchestration import get_client as get_sync_client

        with get_sync_client(sync_client=True) as client:
            state = client.set_flow_run_state(flow_run.id, Pending()).state
        # As the fast worker does: no suspension observer (the run has a deployment).
        flow_run = flow_run.model_copy(update={"state": state, "deployment_id": None})
        return run_flow(bare_flow, flow_run=flow_run, return_type="state").is_completed()

    quiet_console()  # as in the fast worker's job processes
    t0 = time.perf_counter()
    try:
        runs = asyncio.run(create())
        with cf.ThreadPoolExecutor(slots) as pool:
            completed = sum(pool.map(run, runs))
        return time.perf_counter() - t0, completed
    finally:
        _delete_runs(api, deployment_id)
