"""``--only submit``: a burst of jobs from many clients, submitted back to back while
earlier jobs run (issue 17's acceptance 1 and 2).

* submit latency of each ``POST …/execution`` (p50, p99, errors), against the gateway's
  cheapest endpoint at the same concurrency;
* throughput of that burst until every job ended (jobs/min), with the jobs lost (a 201
  whose job never ended) and duplicated (a jobID with more than one flow run, counted in
  Prefect by idempotency key), against **Prefect alone**: as many bare flow runs of three
  no-op tasks, created and run by Prefect's engine (``bench/floor.py``), same run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time
from collections import Counter
from typing import Any

import requests

__all__ = ["burst"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _timed(call: Any, url: str) -> float:
    t0 = time.perf_counter()
    call(url).raise_for_status()
    return time.perf_counter() - t0


def _back_to_back(sessions: list[requests.Session], each: int, one: Any) -> list[Any]:
    """``one(session)`` ``each`` times in a row on every session, the sessions at once."""
    with cf.ThreadPoolExecutor(len(sessions)) as pool:
        parts = pool.map(lambda session: [one(session) for _ in range(each)], sessions)
        return [answer for part in parts for answer in part]


def _runs_per_job(api: str, jobs: list[str]) -> Counter[str]:
    """How many flow runs Prefect holds for each jobID (its idempotency key)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def count() -> Counter[str]:
        found: Counter[str] = Counter()
        with temporary_settings(updates={PREFECT_API_URL: api}):
            async with get_client() as client:
                for at in range(0, len(jobs), 100):
                    key = FlowRunFilterIdempotencyKey(any_=jobs[at : at + 100])
                    runs = await client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(idempotency_key=key), limit=200
                    )
                    found.update(r.idempotency_key for r in runs)
        return found

    return asyncio.run(count())


def burst(bench: Any, jobs: int, clients: int) -> None:
    """Measure ``jobs`` submits from ``clients`` clients while earlier jobs run."""
    # Earlier jobs: the worker is busy when the burst starts.
    with cf.ThreadPoolExecutor(8) as pool:
        earlier = [j for j, _, code in pool.map(lambda _: bench.submit(), range(40)) if code == 201]
    per_client = jobs // clients
    sessions = [requests.Session() for _ in range(clients)]
    # Baseline: the gateway's cheapest endpoint in the same shape (as many requests, from
    # as many clients, back to back) while the same earlier jobs run: the floor of this
    # process's HTTP handling and of this bench's own client threads.
    floor_latencies = _back_to_back(
        sessions, per_client, lambda s: _timed(s.get, f"{bench.base}/conformance")
    )

    t0 = time.perf_counter()
    answers = _back_to_back(sessions, per_client, lambda s: bench.submit(session=s))
    submitted_s = time.perf_counter() - t0
    accepted = [j for j, _, code in answers if code == 201]
    latencies = [elapsed for _, elapsed, _ in answers]
    errors = sum(code != 201 for _, _, code in answers)
    statuses = bench._wait_all(set(accepted), timeout=1800, last=accepted[-1])
    elapsed = time.perf_counter() - t0
    bench._wait_all(set(earlier), timeout=600)
    ok = sum(s == "successful" for s in statuses.values())
    lost = sum(s == "timeout" for s in statuses.values())
    runs = _runs_per_job(bench.api, accepted)
    duplicated = sum(n > 1 for n in runs.values())
    conformance = _pct(floor_latencies, 0.5)
    bench.row(
        f"submit latency, {len(answers)} jobs from {clients} clients back to back, "
        f"{len(earlier)} earlier jobs running",
        f"p50 {1000 * _pct(latencies, 0.5):.1f} ms, p99 {1000 * _pct(latencies, 0.99):.1f} ms, "
        f"{errors} errors (burst submitted in {submitted_s:.1f} s)",
        f"GET /conformance in the same shape ({len(floor_latencies)} requests, {clients} "
        f"clients back to back, same jobs running): p50 {1000 * conformance:.1f} ms, "
        f"p99 {1000 * _pct(floor_latencies, 0.99):.1f} ms",
        f"x{_pct(latencies, 0.5) / conformance:.2f} of GET /conformance",
    )
    from bench import floor

    bare_s, bare_ok = floor.bare_runs(bench.api, len(accepted), bench.args.slots)
    bare_per_min = 60 * bare_ok / bare_s
    per_min = 60 * ok / elapsed
    bench.row(
        f"throughput of that burst, {len(accepted)} echo jobs",
        f"{per_min:.0f} jobs/min ({ok} successful, {len(accepted) - ok - lost} failed, "
        f"{lost} lost, {duplicated} duplicated, {elapsed:.1f} s)",
        f"Prefect alone, {len(accepted)} flow runs of 3 no-op tasks, {bench.args.slots} at a "
        f"time: {bare_per_min:.0f} runs/min ({bare_ok} completed)",
        f"x{per_min / bare_per_min:.2f} of Prefect alone",
    )
