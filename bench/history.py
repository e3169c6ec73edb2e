"""Finished jobs put straight into Prefect, for the benchmarks that need a long history."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid

import httpx
import psutil

from core.naming import job_tag, job_tags

__all__ = ["cpu_seconds", "fill_history", "prefect_auth", "wait_until_quiet"]

_BULK = 100  # runs per call (Prefect's BULK_CREATE_LIMIT)
_AT_ONCE = 4  # calls at once


def prefect_auth() -> tuple[str, str] | None:
    """The Prefect API's basic-auth credentials of the environment's stack (its
    ``PREFECT_API_AUTH_STRING``), for calls made without Prefect's client."""
    value = os.environ.get("PREFECT_API_AUTH_STRING")
    if not value:
        return None
    user, _, password = value.partition(":")
    return user, password


def fill_history(n: int) -> float:
    """Put ``n`` successful echo jobs of user ``bench`` in Prefect's history (against the
    Prefect API of the environment, ``PREFECT_API_URL``); seconds it took.

    Each job is made as the gateway's drainer makes one (its jobID as idempotency key
    and tag, the same tags and parameters), but created ``Completed``: up to 100 runs a
    ``POST /deployments/{id}/create_flow_run/bulk``, ``_AT_ONCE`` calls at once.
    """
    api = os.environ["PREFECT_API_URL"].rstrip("/")

    def run_body(i: int) -> dict:
        job_id = str(uuid.uuid4())
        return {
            "parameters": {"inputs": {"message": str(i)}},
            "tags": [*job_tags("bench", "echo"), job_tag(job_id)],
            "name": "echo",
            "idempotency_key": job_id,
            "state": {"type": "COMPLETED", "name": "Completed"},
        }

    async def fill() -> None:
        async with httpx.AsyncClient(base_url=api, auth=prefect_auth(), timeout=300) as http:
            r = await http.get("/deployments/name/ogc-execute/echo@bench")
            r.raise_for_status()
            url = f"/deployments/{r.json()['id']}/create_flow_run/bulk"
            gate = asyncio.Semaphore(_AT_ONCE)

            async def one(start: int) -> None:
                body = [run_body(i) for i in range(start, min(n, start + _BULK))]
                async with gate:
                    r = await http.post(url, json=body)
                r.raise_for_status()
                refused = [x["error"] for x in r.json()["results"] if x["status"] != "CREATED"]
                if refused:
                    raise RuntimeError(f"Prefect refused {len(refused)} runs: {refused[0]}")

            await asyncio.gather(*(one(start) for start in range(0, n, _BULK)))

    started = time.perf_counter()
    asyncio.run(fill())
    return time.perf_counter() - started


def wait_until_quiet(pid: int, *, below: float = 0.15, timeout: float = 600) -> float:
    """Wait until process ``pid`` and its children use less than ``below`` of a core
    over 5 s (the Prefect server's services work through the events of a fill behind
    it); seconds waited."""
    started = time.perf_counter()
    process = psutil.Process(pid)
    while time.perf_counter() - started < timeout:
        procs = [process, *process.children(recursive=True)]
        before = cpu_seconds(procs)
        time.sleep(5.0)
        if (cpu_seconds(procs) - before) / 5.0 < below:
            break
    return time.perf_counter() - started


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU seconds (user and system) ``procs`` have used; one that ended counts none."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += sum(proc.cpu_times()[:2])
    return total
