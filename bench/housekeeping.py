"""Housekeeping under load: submissions while the housekeeping flow expires old jobs.

    python -m bench --only housekeeping --expired 10000 --postgres

The bench stack runs with ``OAPIP_JOB_RETENTION_DAYS`` set (so it serves the
housekeeping deployment, with a schedule far enough away not to run by itself).
``--expired`` finished jobs are put in Prefect's history; then, the same way twice:
a few clients submit ``echo`` jobs one after another for a while, first with nothing
else running (the baseline), then while a housekeeping run applies the policy as of a
day later (so every job in history expires). The table gives the submit latency of
both (p50, p99) and the ratio, and how fast housekeeping went.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import threading
import time
from typing import Any

import requests

from bench.history import fill_history

__all__ = ["ENVIRONMENT", "run"]

ENVIRONMENT = {
    "OAPIP_JOB_RETENTION_DAYS": "1",
    "OAPIP_HOUSEKEEPING_INTERVAL_S": "604800",  # a week: only the bench's own runs
}
_CLIENTS = 4


def _submissions(bench: Any, until: threading.Event, at_least: int) -> list[float]:
    """Submit jobs from ``_CLIENTS`` clients until ``until`` is set (and at least
    ``at_least`` were submitted); the latency of each, seconds. Returns once the jobs
    ran, so that one phase's jobs do not load the next."""
    latencies: list[float] = []
    jobs: set[str] = set()
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                if until.is_set() and len(latencies) >= at_least:
                    return
            job, elapsed, code = bench.submit(session=session)
            if code != 201:
                raise RuntimeError(f"a submission answered {code}")
            with lock:
                latencies.append(elapsed)
                jobs.add(job)

    with cf.ThreadPoolExecutor(_CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(_CLIENTS)]:
            future.result()
    bench._wait_all(jobs, timeout=600)
    return latencies


def _housekeeping(bench: Any, as_of: dt.datetime, done: threading.Event) -> dict[str, Any]:
    """Run the housekeeping deployment as of ``as_of``; set ``done`` when it ended."""
    api = bench.api
    deployment = None
    deadline = time.monotonic() + 120
    while deployment is None and time.monotonic() < deadline:
        r = requests.get(f"{api}/deployments/name/oapip-housekeeping/housekeeping", timeout=30)
        deployment = r.json() if r.status_code == 200 else time.sleep(0.5)
    if deployment is None:
        raise RuntimeError("the housekeeping deployment did not appear")
    run = requests.post(
        f"{api}/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": {"as_of": as_of.isoformat()}},
        timeout=30,
    ).json()
    try:
        while True:
            body = requests.get(f"{api}/flow_runs/{run['id']}", timeout=30).json()
            if body["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return body
            time.sleep(0.5)
    finally:
        done.set()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(bench: Any, expired: int) -> None:
    """Fill history with ``expired`` jobs, then measure (see the module docstring)."""
    fill_s = fill_history(expired)
    # Baseline: as many submissions as the loaded phase will make, with nothing else.
    idle = threading.Event()
    idle.set()
    baseline = _submissions(bench, idle, at_least=100)
    done = threading.Event()
    as_of = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with cf.ThreadPoolExecutor(1) as pool:
        t0 = time.perf_counter()
        housekeeping = pool.submit(_housekeeping, bench, as_of, done)
        loaded = _submissions(bench, done, at_least=20)
        finished = housekeeping.result()
        took = time.perf_counter() - t0
    state = finished["state"]["type"]
    p50, base50 = _pct(loaded, 0.5), _pct(baseline, 0.5)
    bench.row(
        f"submit latency while housekeeping expires {expired} jobs ({_CLIENTS} clients)",
        f"p50 {1000 * p50:.0f} ms, p99 {1000 * _pct(loaded, 0.99):.0f} ms ({len(loaded)} jobs)",
        f"nothing else running: p50 {1000 * base50:.0f} ms, "
        f"p99 {1000 * _pct(baseline, 0.99):.0f} ms ({len(baseline)} jobs)",
        f"x{p50 / base50:.2f}",
    )
    bench.row(
        f"housekeeping of {expired} expired jobs",
        f"{took:.0f} s ({expired / took:.0f} jobs/s), run {state}",
        f"history filled in {fill_s:.0f} s",
        "",
    )
