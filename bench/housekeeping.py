"""Housekeeping under load: submissions while the housekeeping flow expires, then purges,
old jobs.

    python -m bench --only housekeeping --expired 10000 --postgres [--skip purge]
    OAPIP_HOUSEKEEPING_DUTY=1 python -m bench --only housekeeping ...   # another pace

The bench stack runs with ``OAPIP_JOB_RETENTION_DAYS`` and ``OAPIP_JOB_PURGE_DAYS`` set
(so it serves the housekeeping deployment, with a schedule far enough away not to run
by itself). ``--expired`` finished jobs are put in Prefect's history
(``bench.history``); once the server is quiet again, ``echo`` jobs are submitted at a
steady pace (``_CLIENTS`` clients, one job each every ``_EVERY_S``, below what the stack
runs a second, so that no backlog builds up) in two phases:

1. while a housekeeping run applies the policy as of a day later: every job in history
   expires (results removed, run tagged);
2. while a housekeeping run applies it as of two days later: every job is purged
   (artifacts, runs with ``bulk_delete``, their logs behind).

Within each phase the baseline is interleaved with the measure: the housekeeping
processes (the served deployment and its flow run) are stopped (SIGSTOP) in one window
of ``_WINDOW_S`` of each pair and let go on (SIGCONT) in the other, in a random order,
so each submission is made either with nothing else running or while housekeeping
works (those of a window's first ``_SETTLE_S`` are left out), and both sets meet the
same load from the rest of the machine (other test suites on a shared machine move a
p50 of a few milliseconds by more than the 10 % looked for). The table gives the submit
latency in each (p50, p99), their ratio with a bootstrap interval, the cores each
process used in each, the load average, and how fast housekeeping went in the windows
it ran.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import datetime as dt
import os
import random
import signal
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
_WINDOW_S = 20.0  # housekeeping stopped, then running, in turns of this long
_PAGE = 200  # jobs whose state one call reads
# Submissions in a window's first seconds are left out: a call of housekeeping stopped
# half-way ends after the window that stopped it, and earns its longest rest then
# (flows.housekeeping._MAX_REST_S; not imported here: importing Prefect reads its
# settings, before the bench has set its stack's).
_SETTLE_S = 5.0


@dataclasses.dataclass
class _Submission:
    """One job submitted."""

    sent: float  # time.monotonic() when it was sent
    at: dt.datetime  # the same, by the wall clock
    seconds: float  # until the gateway answered
    job: str


def _submit_until(bench: Any, done: Callable[[], bool]) -> list[_Submission]:
    """Submit jobs from ``_CLIENTS`` clients, one every ``_EVERY_S`` each, until
    ``done()``."""
    submissions: list[_Submission] = []
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
            sent, at = time.monotonic(), dt.datetime.now(dt.UTC)
            job, elapsed, code = bench.submit(session=session)
            if code != 201:
                raise RuntimeError(f"a submission answered {code}")
            with lock:
                submissions.append(_Submission(sent, at, elapsed, job))

    with cf.ThreadPoolExecutor(_CLIENTS) as pool:
        offsets = [i * _EVERY_S / _CLIENTS for i in range(_CLIENTS)]
        for future in [pool.submit(client, offset) for offset in offsets]:
            future.result()
    return submissions


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
    set when it ended; set by another, it ends the wait)."""
    try:
        body = requests.post(
            f"{api}/deployments/{_deployment_id(api)}/create_flow_run",
            json={"parameters": {"as_of": as_of.isoformat()}},
            auth=prefect_auth(),
            timeout=30,
        ).json()
        while not done.is_set():
            body = requests.get(
                f"{api}/flow_runs/{body['id']}", auth=prefect_auth(), timeout=30
            ).json()
            if body["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(0.5)
        return body
    finally:
        done.set()


def _runs_of(api: str, jobs: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """The run of each job once none is left to run (or ``timeout`` seconds passed),
    read from Prefect ``_PAGE`` jobs a call: a phase submits thousands, more than the
    gateway's list holds in a page."""
    deadline = time.monotonic() + timeout
    final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
    while True:
        runs: dict[str, dict[str, Any]] = {}
        for start in range(0, len(jobs), _PAGE):
            tags = [f"job:{job}" for job in jobs[start : start + _PAGE]]
            r = requests.post(
                f"{api}/flow_runs/filter",
                json={"flow_runs": {"tags": {"any_": tags}}, "limit": _PAGE},
                auth=prefect_auth(),
                timeout=60,
            )
            r.raise_for_status()
            for run in r.json():
                runs[next(t for t in run["tags"] if t.startswith("job:"))[4:]] = run
        ended = [runs.get(job, {}).get("state", {}).get("type") in final for job in jobs]
        if all(ended) or time.monotonic() > deadline:
            return runs
        time.sleep(2.0)


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


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _housekeeping_processes(bench: Any) -> list[psutil.Process]:
    """The process serving the housekeeping deployment and its flow runs' processes."""
    root = psutil.Process(bench.stack.processes["housekeeping"].pid)
    return [root, *root.children(recursive=True)]


def _hold(bench: Any, stopped: bool) -> None:
    """Stop (SIGSTOP) or let go on (SIGCONT) every housekeeping process."""
    for proc in _housekeeping_processes(bench):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGSTOP if stopped else signal.SIGCONT)


@dataclasses.dataclass
class _Window:
    """One window of a phase: housekeeping stopped or running."""

    running: bool
    start: float  # time.monotonic()
    end: float
    cpu: dict[str, float]  # CPU seconds each process used in it

    def holds(self, t: float) -> bool:
        """Whether a submission sent at ``t`` counts in this window (once it settled)."""
        return self.start + _SETTLE_S <= t < self.end


@dataclasses.dataclass
class _Phase:
    """What one phase measured."""

    submissions: list[_Submission]
    windows: list[_Window]
    runs: dict[str, dict[str, Any]]  # the run of each job submitted, once it ended
    loads: list[float]  # 1-minute load average at each window's start
    run: dict[str, Any]  # the housekeeping run

    def sent_when(self, running: bool) -> list[_Submission]:
        """The submissions sent while housekeeping was (not) running."""
        spans = [w for w in self.windows if w.running == running]
        return [s for s in self.submissions if any(w.holds(s.sent) for w in spans)]

    def latencies(self, running: bool) -> list[float]:
        """Seconds until the gateway answered, of :meth:`sent_when`."""
        return [s.seconds for s in self.sent_when(running)]

    def jobs(self, running: bool) -> str:
        values = self.latencies(running)
        return (
            f"p50 {1000 * _pct(values, 0.5):.1f} ms, p99 {1000 * _pct(values, 0.99):.0f} ms "
            f"({len(values)} jobs)"
        )

    def ratio(self) -> float:
        """p50 with housekeeping running over p50 with it stopped."""
        return _pct(self.latencies(True), 0.5) / _pct(self.latencies(False), 0.5)

    def ratio_interval(self, draws: int = 2000) -> tuple[float, float]:
        """The 5th and 95th percentiles of :meth:`ratio` over resamples of both sets of
        submissions (a bootstrap): how far the ratio moves with which submissions were
        made."""
        running, stopped = self.latencies(True), self.latencies(False)
        draw = random.Random(19)
        ratios = [
            _pct(draw.choices(running, k=len(running)), 0.5)
            / _pct(draw.choices(stopped, k=len(stopped)), 0.5)
            for _ in range(draws)
        ]
        return _pct(ratios, 0.05), _pct(ratios, 0.95)

    def end_to_end(self, running: bool) -> str:
        """p50 of submission to the run's end of the successful jobs of
        :meth:`sent_when`: what housekeeping costs Prefect's own work."""
        seconds = [
            (dt.datetime.fromisoformat(run["end_time"]) - s.at).total_seconds()
            for s in self.sent_when(running)
            if (run := self.runs.get(s.job)) and run["state"]["type"] == "COMPLETED"
        ]
        return f"p50 {_pct(seconds, 0.5):.2f} s ({len(seconds)} jobs)" if seconds else "none"

    def successful(self) -> int:
        return sum(r["state"]["type"] == "COMPLETED" for r in self.runs.values())

    def cores(self, running: bool) -> str:
        """The cores each process used in the windows housekeeping was (not) running."""
        spans = [w for w in self.windows if w.running == running]
        seconds = sum(w.end - w.start for w in spans)
        names = sorted(spans[0].cpu) if spans else []
        return ", ".join(
            f"{n} {sum(w.cpu.get(n, 0.0) for w in spans) / seconds:.2f}" for n in names
        )

    def running_s(self) -> float:
        """Seconds housekeeping was let run."""
        return sum(w.end - w.start for w in self.windows if w.running)

    def load(self) -> str:
        return f"load average {min(self.loads):.1f}-{max(self.loads):.1f}"


def _phase(bench: Any, as_of: dt.datetime) -> _Phase:
    """Submissions while a housekeeping run applies the policy as of ``as_of``, the run
    stopped in one window of each pair; then wait for their jobs to end."""
    done = threading.Event()
    windows: list[_Window] = []
    loads: list[float] = []
    with cf.ThreadPoolExecutor(2) as pool:
        housekeeping = pool.submit(_housekeeping, bench.api, as_of, done)
        submitting = pool.submit(_submit_until, bench, done.is_set)
        # Windows come in pairs, one of each in a random order: no other periodic work
        # of the machine (Prefect's services loop every few seconds) keeps step with them.
        order = random.Random(19)
        turns = (turn for _ in iter(int, 1) for turn in order.sample([True, False], 2))
        try:
            while not done.is_set():
                running = next(turns)
                loads.append(os.getloadavg()[0])
                cpu, start = _cpu_by_process(bench), time.monotonic()
                _hold(bench, stopped=not running)
                done.wait(_WINDOW_S)
                after = _cpu_by_process(bench)
                used = {n: after[n] - cpu[n] for n in after if n in cpu}
                windows.append(_Window(running, start, time.monotonic(), used))
        except BaseException:
            done.set()  # the submissions and the wait for the run end with the bench
            raise
        finally:
            _hold(bench, stopped=False)
        run = housekeeping.result()
        submissions = submitting.result()
    runs = _runs_of(bench.api, [s.job for s in submissions], timeout=900)
    return _Phase(submissions, windows, runs, loads, run)


def _report(bench: Any, phase: _Phase, what: str, done: int) -> None:
    """The rows of one phase: ``done`` jobs were ``what`` (expired, purged)."""
    pace = f"{_CLIENTS} clients, one job each every {_EVERY_S:.0f} s"
    duty = os.environ.get("OAPIP_HOUSEKEEPING_DUTY", "default")
    spans = sum(w.running for w in phase.windows), sum(not w.running for w in phase.windows)
    bench.row(
        f"submit latency while housekeeping runs ({done} jobs {what}, "
        f"OAPIP_HOUSEKEEPING_DUTY {duty}; {pace}; windows of {_WINDOW_S:.0f} s, "
        f"{spans[0]} running, {spans[1]} stopped)",
        phase.jobs(running=True),
        f"housekeeping stopped, in between: {phase.jobs(running=False)}; {phase.load()}",
        "x{:.2f} (90 % interval {:.2f}-{:.2f})".format(phase.ratio(), *phase.ratio_interval()),
    )
    bench.row(
        f"those jobs end to end (submitted to ended), while housekeeping {what}",
        phase.end_to_end(running=True),
        f"housekeeping stopped: {phase.end_to_end(running=False)}",
        "",
    )
    bench.row(
        f"housekeeping run, {done} jobs {what}",
        f"{phase.running_s():.0f} s running ({done / phase.running_s():.1f} jobs/s), "
        f"run {phase.run['state']['type']}",
        f"{len(phase.submissions)} jobs submitted meanwhile, {phase.successful()} successful",
        "",
    )
    bench.row(
        f"CPU while housekeeping runs ({what}), cores",
        phase.cores(running=True),
        f"stopped: {phase.cores(running=False)}",
        "",
    )


def run(bench: Any, expired: int) -> None:
    """Fill history with ``expired`` jobs, then measure (see the module docstring)."""
    api = bench.api
    fill_s = fill_history(expired, os.environ.get("OAPIP_DATABASE_URL") if bench.db else None)
    quiet_s = wait_until_quiet(bench.stack.processes["prefect-server"].pid)
    _deployment_id(api)
    print(f"bench: {expired} jobs in history in {fill_s:.0f} s, quiet {quiet_s:.0f} s later")

    # As of a day (the retention) after now: every job that ended so far expires.
    expiring = _phase(bench, dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    _report(bench, expiring, "expired", _count(api, ["oapip", "results-expired"]))
    if "purge" in bench.args.skip:
        return

    # As of two days (retention and purge) after now: every job that ended so far goes.
    before = _count(api, ["oapip", "user:bench"])
    purging = _phase(bench, dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    purged = before + len(purging.submissions) - _count(api, ["oapip", "user:bench"])
    _report(bench, purging, "purged", purged)
