"""Housekeeping under load: submissions while the housekeeping flow expires, then purges,
old jobs.

    python -m bench --only housekeeping --expired 10000 --postgres

The bench stack runs with ``OAPIP_JOB_RETENTION_DAYS`` and ``OAPIP_JOB_PURGE_DAYS`` set
(so it serves the housekeeping deployment, with a schedule far enough away not to run
by itself). ``--expired`` finished jobs are put in Prefect's history
(``bench.history``); once the server is quiet again, three phases submit ``echo`` jobs
at the same steady pace (``_CLIENTS`` clients, one job each every ``_EVERY_S``, below
what the stack runs a second, so that no backlog builds up):

1. nothing else running, for ``_BASELINE_S`` (the baseline);
2. while a housekeeping run applies the policy as of a day later: every job in history
   expires (results removed, run tagged);
3. while a housekeeping run applies it as of two days later: every job is purged
   (artifacts, runs with ``bulk_delete``, their logs behind).

Each phase waits for its jobs to finish before the next begins. The table gives the
submit latency of each (p50, p99), its ratio to the baseline, and how fast housekeeping
went.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from bench.history import fill_history, prefect_auth, wait_until_quiet

__all__ = ["ENVIRONMENT", "run"]

ENVIRONMENT = {
    "OAPIP_JOB_RETENTION_DAYS": "1",
    "OAPIP_JOB_PURGE_DAYS": "1",
    "OAPIP_HOUSEKEEPING_INTERVAL_S": "604800",  # a week: only the bench's own runs
}
_CLIENTS = 2
_EVERY_S = 1.0  # each client submits one job a second
_BASELINE_S = 90.0


def _submissions(bench: Any, done: Callable[[], bool]) -> tuple[list[float], int, int]:
    """Submit jobs from ``_CLIENTS`` clients, one every ``_EVERY_S`` each, until
    ``done()``; the latency of each (seconds), how many were submitted and how many
    ended successful. Returns once the jobs ended, so that one phase's jobs do not
    load the next."""
    latencies: list[float] = []
    jobs: set[str] = set()
    lock = threading.Lock()
    start = time.monotonic()

    def client(offset: float) -> None:
        session = requests.Session()
        turn = 0
        while not done():
            delay = start + offset + turn * _EVERY_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            turn += 1
            job, elapsed, code = bench.submit(session=session)
            if code != 201:
                raise RuntimeError(f"a submission answered {code}")
            with lock:
                latencies.append(elapsed)
                jobs.add(job)

    with cf.ThreadPoolExecutor(_CLIENTS) as pool:
        offsets = [i * _EVERY_S / _CLIENTS for i in range(_CLIENTS)]
        for future in [pool.submit(client, offset) for offset in offsets]:
            future.result()
    statuses = bench._wait_all(jobs, timeout=900)
    return latencies, len(jobs), sum(s == "successful" for s in statuses.values())


def _deployment_id(api: str) -> str:
    """The housekeeping deployment's id, once its process has created it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = requests.get(
            f"{api}/deployments/name/oapip-housekeeping/housekeeping",
            auth=prefect_auth(),
            timeout=30,
        )
        if r.status_code == 200:
            return r.json()["id"]
        time.sleep(0.5)
    raise RuntimeError("the housekeeping deployment did not appear")


def _housekeeping(api: str, as_of: dt.datetime, done: threading.Event) -> dict[str, Any]:
    """Run the housekeeping deployment as of ``as_of``; its final flow run (``done`` is
    set when it ended)."""
    try:
        run = requests.post(
            f"{api}/deployments/{_deployment_id(api)}/create_flow_run",
            json={"parameters": {"as_of": as_of.isoformat()}},
            auth=prefect_auth(),
            timeout=30,
        ).json()
        while True:
            body = requests.get(
                f"{api}/flow_runs/{run['id']}", auth=prefect_auth(), timeout=30
            ).json()
            if body["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return body
            time.sleep(0.5)
    finally:
        done.set()


def _count(api: str, tags: list[str]) -> int:
    """How many flow runs have every tag of ``tags``."""
    r = requests.post(
        f"{api}/flow_runs/count",
        json={"flow_runs": {"tags": {"all_": tags}}},
        auth=prefect_auth(),
        timeout=60,
    )
    r.raise_for_status()
    return r.json()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _latency(values: list[float]) -> str:
    return f"p50 {1000 * _pct(values, 0.5):.0f} ms, p99 {1000 * _pct(values, 0.99):.0f} ms"


def _under_load(bench: Any, as_of: dt.datetime) -> tuple[list[float], int, int, float, str]:
    """Submissions while a housekeeping run applies the policy as of ``as_of``: their
    latencies, submitted, successful, the run's seconds and final state."""
    done = threading.Event()
    with cf.ThreadPoolExecutor(1) as pool:
        housekeeping = pool.submit(_housekeeping, bench.api, as_of, done)
        latencies, submitted, ok = _submissions(bench, done.is_set)
        finished = housekeeping.result()
    took = (
        dt.datetime.fromisoformat(finished["end_time"])
        - dt.datetime.fromisoformat(finished["start_time"])
    ).total_seconds()
    return latencies, submitted, ok, took, finished["state"]["type"]


def run(bench: Any, expired: int) -> None:
    """Fill history with ``expired`` jobs, then measure (see the module docstring)."""
    api = bench.api
    fill_s = fill_history(expired)
    quiet_s = wait_until_quiet(bench.stack.processes["prefect-server"].pid)
    _deployment_id(api)
    print(f"bench: {expired} jobs in history in {fill_s:.0f} s, quiet {quiet_s:.0f} s later")

    deadline = time.monotonic() + _BASELINE_S
    baseline, base_n, base_ok = _submissions(bench, lambda: time.monotonic() > deadline)
    base50 = _pct(baseline, 0.5)
    pace = f"{_CLIENTS} clients, one job each every {_EVERY_S:.0f} s"

    # As of a day (the retention) after now: every job that ended so far expires.
    jobs = _count(api, ["oapip", "user:bench"])
    as_of = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    loaded, n, ok, took, state = _under_load(bench, as_of)
    tagged = _count(api, ["oapip", "results-expired"])
    bench.row(
        f"submit latency while housekeeping expires {expired} jobs ({pace})",
        f"{_latency(loaded)} ({n} jobs, {ok} successful)",
        f"nothing else running: {_latency(baseline)} ({base_n} jobs, {base_ok} successful)",
        f"x{_pct(loaded, 0.5) / base50:.2f}",
    )
    bench.row(
        f"housekeeping run expiring {tagged} of {jobs} jobs",
        f"{took:.0f} s ({tagged / took:.0f} jobs/s), run {state}",
        f"history of {expired} filled in {fill_s:.0f} s",
        "",
    )

    # As of two days (retention and purge) after now: every job that ended so far goes.
    before = _count(api, ["oapip", "user:bench"])
    as_of = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    loaded, n, ok, took, state = _under_load(bench, as_of)
    purged = before + n - _count(api, ["oapip", "user:bench"])
    bench.row(
        f"submit latency while housekeeping purges them ({pace})",
        f"{_latency(loaded)} ({n} jobs, {ok} successful)",
        f"nothing else running: p50 {1000 * base50:.0f} ms",
        f"x{_pct(loaded, 0.5) / base50:.2f}",
    )
    bench.row(
        f"housekeeping run purging {purged} jobs",
        f"{took:.0f} s ({purged / took:.0f} jobs/s), run {state}",
        "",
        "",
    )
