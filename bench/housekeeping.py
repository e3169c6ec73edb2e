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
import contextlib
import dataclasses
import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import requests

from bench.history import cpu_seconds, fill_history, prefect_auth, wait_until_quiet

__all__ = ["ENVIRONMENT", "run"]

ENVIRONMENT = {
    "OAPIP_JOB_RETENTION_DAYS": "1",
    "OAPIP_JOB_PURGE_DAYS": "1",
    "OAPIP_HOUSEKEEPING_INTERVAL_S": "604800",  # a week: only the bench's own runs
}
_CLIENTS = 2
_EVERY_S = 2.0  # each client submits one job every 2 s: 1 job/s, below what the stack runs
_BASELINE_S = 90.0


def _submit_until(bench: Any, done: Callable[[], bool]) -> tuple[list[float], set[str]]:
    """Submit jobs from ``_CLIENTS`` clients, one every ``_EVERY_S`` each, until
    ``done()``; the latency of each (seconds) and the jobIDs."""
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
    return latencies, jobs


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


def _cpu_by_process(bench: Any) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack (with its children) and by
    PostgreSQL (every ``postgres`` process of the machine)."""
    used = {}
    for name, proc in bench.stack.processes.items():
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
            used[name] = cpu_seconds([root, *root.children(recursive=True)])
    postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
    used["postgres"] = cpu_seconds(postgres)
    return used


def _cores(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """The cores each process used between two :func:`_cpu_by_process` readings."""
    return ", ".join(
        f"{name} {(after[name] - before.get(name, 0.0)) / seconds:.2f}"
        for name in sorted(after)
        if name in before
    )


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


@dataclasses.dataclass
class _Phase:
    """What one phase measured."""

    latencies: list[float]  # of each submission, seconds
    submitted: int
    successful: int
    cores: str  # the cores each process used while jobs were submitted
    run: dict[str, Any] | None = None  # the housekeeping run, when one ran

    def jobs(self) -> str:
        return (
            f"p50 {1000 * _pct(self.latencies, 0.5):.0f} ms, "
            f"p99 {1000 * _pct(self.latencies, 0.99):.0f} ms "
            f"({self.submitted} jobs, {self.successful} successful)"
        )

    def run_seconds(self) -> float:
        """How long the housekeeping run ran (its start to its end, by Prefect)."""
        assert self.run is not None
        start = dt.datetime.fromisoformat(self.run["start_time"])
        return (dt.datetime.fromisoformat(self.run["end_time"]) - start).total_seconds()


def _phase(bench: Any, *, seconds: float = 0.0, as_of: dt.datetime | None = None) -> _Phase:
    """Submissions for ``seconds``, or while a housekeeping run applies the policy as of
    ``as_of``; then wait for their jobs to end."""
    cpu, t0 = _cpu_by_process(bench), time.monotonic()
    run = None
    if as_of is None:
        latencies, jobs = _submit_until(bench, lambda: time.monotonic() - t0 > seconds)
    else:
        done = threading.Event()
        with cf.ThreadPoolExecutor(1) as pool:
            housekeeping = pool.submit(_housekeeping, bench.api, as_of, done)
            latencies, jobs = _submit_until(bench, done.is_set)
            run = housekeeping.result()
    cores = _cores(cpu, _cpu_by_process(bench), time.monotonic() - t0)
    statuses = bench._wait_all(jobs, timeout=900)
    ok = sum(s == "successful" for s in statuses.values())
    return _Phase(latencies, len(jobs), ok, cores, run)


def run(bench: Any, expired: int) -> None:
    """Fill history with ``expired`` jobs, then measure (see the module docstring)."""
    api = bench.api
    fill_s = fill_history(expired, os.environ.get("OAPIP_DATABASE_URL") if bench.db else None)
    quiet_s = wait_until_quiet(bench.stack.processes["prefect-server"].pid)
    _deployment_id(api)
    print(f"bench: {expired} jobs in history in {fill_s:.0f} s, quiet {quiet_s:.0f} s later")
    pace = f"{_CLIENTS} clients, one job each every {_EVERY_S:.0f} s"

    baseline = _phase(bench, seconds=_BASELINE_S)
    base50 = _pct(baseline.latencies, 0.5)
    bench.row(
        f"CPU while submitting, nothing else running ({pace}), cores",
        baseline.cores,
        "",
        "",
    )

    # As of a day (the retention) after now: every job that ended so far expires.
    jobs = _count(api, ["oapip", "user:bench"])
    expiring = _phase(bench, as_of=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    tagged = _count(api, ["oapip", "results-expired"])
    took = expiring.run_seconds()
    bench.row(
        f"submit latency while housekeeping expires {expired} jobs ({pace})",
        expiring.jobs(),
        f"nothing else running: {baseline.jobs()}",
        f"x{_pct(expiring.latencies, 0.5) / base50:.2f}",
    )
    bench.row(
        f"housekeeping run expiring {tagged} of {jobs} jobs",
        f"{took:.0f} s ({tagged / took:.0f} jobs/s), run {expiring.run['state']['type']}",
        f"history of {expired} filled in {fill_s:.0f} s",
        "",
    )
    bench.row("CPU while it expires, cores", expiring.cores, "", "")

    # As of two days (retention and purge) after now: every job that ended so far goes.
    before = _count(api, ["oapip", "user:bench"])
    purging = _phase(bench, as_of=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    purged = before + purging.submitted - _count(api, ["oapip", "user:bench"])
    took = purging.run_seconds()
    bench.row(
        f"submit latency while housekeeping purges them ({pace})",
        purging.jobs(),
        f"nothing else running: p50 {1000 * base50:.0f} ms",
        f"x{_pct(purging.latencies, 0.5) / base50:.2f}",
    )
    bench.row(
        f"housekeeping run purging {purged} jobs",
        f"{took:.0f} s ({purged / took:.0f} jobs/s), run {purging.run['state']['type']}",
        "",
        "",
    )
    bench.row("CPU while it purges, cores", purging.cores, "", "")
