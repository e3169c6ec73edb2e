"""Benchmark the engine; every figure is set against a baseline measured in the same run.

    python -m bench [--jobs 300] [--clients 50] [--history 20000] [--postgres]
    python -m bench --only transfer [--transfer-mib 200] [--rounds 3]
    python -m bench --only submit [--jobs 300] [--clients 50] [--postgres]
    python -m bench --only wes [--wes-runs 5] [--wes-workflows two-steps echo]
    python -m bench --only sandbox [--sandbox-runs 10]
    python -m bench --only housekeeping [--expired 10000] --postgres
    python -m bench --only fairshare [--jobs 300]

It starts its own stack (Prefect server, fast worker, gateway) on free loopback ports in
a temporary home, deploys ``bench/echo.cwl`` and measures:

* bare ``cwltool echo.cwl job.yml`` wall time (the baseline, median of 10);
* end-to-end time of the same job through the API (POST with ``Prefer: respond-async``
  until ``successful`` is observed), median of 10, and the ratio to the baseline;
* submit latency with N concurrent clients (p50/p99, errors);
* throughput of N jobs submitted at once (jobs/min, lost, failed);
* engine memory per in-flight job (USS of job processes, tools excluded);
* with ``--history``: ``GET /jobs?limit=100`` and ``GET /jobs/{id}`` latency with that many
  finished jobs in Prefect (use ``--postgres``);
* ``--only wes``: an HPC site (``infrastructure/hpc``: Slurm + Toil WES) is started too and
  the stack runs every process on it (``OAPIP_EXECUTION_ENGINE=toil``); the same
  job's end-to-end time through the engine is set against the same packed
  workflow submitted straight to WES, alternately, median of ``--wes-runs`` each, for
  ``bench/two-steps.cwl`` and ``echo.cwl``.

``--only sandbox`` runs ``bench/sandbox.py``: the echo job end to end on a stack with
``OAPIP_SANDBOX=containers`` (podman) against one with ``off``, side by side.
``--only housekeeping`` (``bench/housekeeping.py``): submit latency while the
housekeeping flow expires ``--expired`` jobs, against the same submissions with nothing
else running.
``--only fairshare`` runs ``bench/fairshare.py``: the throughput of a burst of jobs of
several users on a stack with per-user limits on, against one with them off.

``--only transfer`` runs ``bench/transfer.py`` alone (no stack): 200 MiB through stage-in
and stage-out against raw boto3 transfers to the same S3 endpoint.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import requests

from bench.options import parse_args

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(tempfile.mkdtemp(prefix="oapip-bench-"))
        self.rows: list[tuple[str, str, str, str]] = []
        self.session = requests.Session()
        self.db: str | None = None
        self.site = None
        self.stack = None

    # --- stack -------------------------------------------------------------------------
    def start(self) -> None:
        if self.args.only == "wes":
            from bench.wes import HpcSite

            self.site = HpcSite()
            self.site.start()
            print(f"bench: HPC site (Slurm + Toil WES) up in {self.site.up_s:.1f} s", flush=True)
            os.environ.update({**self.site.settings, "OAPIP_EXECUTION_ENGINE": "toil"})
        if self.args.only == "housekeeping":
            from bench.housekeeping import ENVIRONMENT

            os.environ.update(ENVIRONMENT)
        port, prefect_port = _free_port(), _free_port()
        os.environ.update(
            {
                "OAPIP_HOME": str(self.home),
                "OAPIP_PORT": str(port),
                "OAPIP_PREFECT_PORT": str(prefect_port),
                "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
                "OAPIP_WORKER_SLOTS": str(self.args.slots),
            }
        )
        # One user submits every job here: per-user limits that do not bind (the cost
        # of the limits themselves is `--only fairshare`).
        os.environ.setdefault("OAPIP_USER_MAX_RUNNING", str(self.args.slots))
        os.environ.setdefault("OAPIP_USER_MAX_QUEUED", "0")
        from core.settings import Settings, get_settings
        from stack.local import Stack

        get_settings.cache_clear()
        db = None
        if self.args.postgres:
            db = f"oapip_bench_{uuid.uuid4().hex[:8]}"
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {db}"],
                check=True,
            )
            os.environ["OAPIP_DATABASE_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
        self.db = db
        self.stack = Stack(Settings())
        self.stack.start()
        self.base = f"http://127.0.0.1:{port}/bench/ogc-api"
        self.api = f"http://127.0.0.1:{prefect_port}/api"
        body = (HERE / "echo.cwl").read_text()
        names = ("echo.cwl", "sleep.cwl") + (("two-steps.cwl",) if self.args.only else ())
        for name in names:
            r = self.session.post(
                f"{self.base}/processes",
                data=(HERE / name).read_text(),
                headers={"Content-Type": "application/cwl+yaml"},
            )
            r.raise_for_status()
        del body

    def stop(self) -> None:
        if self.stack:
            self.stack.stop()
        if self.site:
            self.site.stop()
        if self.db:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qc",
                    f"DROP DATABASE {self.db} WITH (FORCE)",
                ]
            )
        shutil.rmtree(self.home, ignore_errors=True)

    # --- helpers -----------------------------------------------------------------------
    def submit(
        self, process: str = "echo", inputs: dict | None = None, session=None
    ) -> tuple[str, float, int]:
        s = session or self.session
        t0 = time.perf_counter()
        r = s.post(
            f"{self.base}/processes/{process}/execution",
            json={"inputs": inputs or {"message": "hello"}},
            headers={"Prefer": "respond-async"},
        )
        elapsed = time.perf_counter() - t0
        job = r.headers.get("Location", "").rsplit("/", 1)[-1]
        return job, elapsed, r.status_code

    def wait(self, job: str, timeout: float = 120, interval: float = 0.01) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.session.get(f"{self.base}/jobs/{job}").json()["status"]
            if status in ("successful", "failed", "dismissed"):
                return status
            time.sleep(interval)
        return "timeout"

    def row(self, what: str, engine: str, baseline: str, ratio: str) -> None:
        self.rows.append((what, engine, baseline, ratio))
        print(f"  {what}: {engine} (baseline {baseline}) {ratio}", flush=True)

    # --- measurements --------------------------------------------------------------------
    def bare_cwltool(self, n: int = 10) -> float:
        work = self.home / "bare"
        work.mkdir()
        (work / "job.yml").write_text("message: hello\n")
        cwltool = str(Path(sys.executable).parent / "cwltool")
        # As a user runs it: with the byte-code cache (a first, untimed run fills it),
        # even where the environment turns writing it off (PYTHONDONTWRITEBYTECODE).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        times = []
        for _ in range(n + 1):
            t0 = time.perf_counter()
            subprocess.run(
                [cwltool, "--quiet", str(HERE / "echo.cwl"), "job.yml"],
                cwd=work,
                check=True,
                capture_output=True,
                env=env,
            )
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:])

    def end_to_end(self, baseline: float, n: int = 10) -> None:
        self.wait(self.submit()[0])  # warm: first run of a revision loads its CWL
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            job, _, _ = self.submit()
            assert self.wait(job) == "successful"
            times.append(time.perf_counter() - t0)
        e2e = statistics.median(times)
        self.row(
            "echo job end-to-end, median of 10",
            f"{e2e:.3f} s",
            f"bare cwltool {baseline:.3f} s",
            f"ratio {e2e / baseline:.2f}",
        )

    def submit_latency(self, clients: int, rounds: int = 4) -> None:
        latencies, errors = [], 0
        jobs = []
        sessions = [requests.Session() for _ in range(clients)]
        for _ in range(rounds):
            with cf.ThreadPoolExecutor(clients) as pool:
                for job, elapsed, code in pool.map(lambda s: self.submit(session=s), sessions):
                    latencies.append(elapsed)
                    errors += code != 201
                    jobs.append(job)
            self._wait_all(set(jobs), timeout=600)
            jobs.clear()
        raw = self._raw_post_latency(clients)
        from bench import floor

        creates, create_errors = floor.create_latency(self.api, clients, rounds)
        self.row(
            f"submit latency, {clients} concurrent clients x {rounds}",
            f"p50 {1000 * _pct(latencies, 0.5):.0f} ms, "
            f"p99 {1000 * _pct(latencies, 0.99):.0f} ms, {errors} errors",
            f"GET /conformance, same concurrency, p50 {1000 * raw:.0f} ms; "
            f"Prefect's own create-flow-run (REST, no job running), same concurrency, "
            f"p50 {1000 * _pct(creates, 0.5):.0f} ms, p99 {1000 * _pct(creates, 0.99):.0f} ms, "
            f"{create_errors} errors",
            f"x{_pct(latencies, 0.5) / _pct(creates, 0.5):.2f} of Prefect's p50"
            if not create_errors
            else f"Prefect refused {create_errors} of {len(creates)} creations (503)",
        )

    def _raw_post_latency(self, clients: int) -> float:
        """Baseline: the same concurrency against the gateway's cheapest endpoint."""
        sessions = [requests.Session() for _ in range(clients)]

        def one(s):
            t0 = time.perf_counter()
            s.get(f"{self.base}/conformance")
            return time.perf_counter() - t0

        with cf.ThreadPoolExecutor(clients) as pool:
            return statistics.median(pool.map(one, sessions))

    def throughput(self, n: int, baseline: float) -> None:
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(16) as pool:
            submitted = list(pool.map(lambda _: self.submit(), range(n)))
        jobs = [j for j, _, code in submitted if code == 201]
        statuses = self._wait_all(set(jobs), timeout=900, last=jobs[-1] if jobs else None)
        elapsed = time.perf_counter() - t0
        ok = sum(s == "successful" for s in statuses.values())
        lost = n - len(set(jobs))
        per_min = 60 * ok / elapsed
        from bench import floor

        bare_s, bare_ok = floor.bare_runs(self.api, n, self.args.slots)
        bare_per_min = 60 * bare_ok / bare_s
        self.row(
            f"throughput, {n} echo jobs submitted at once",
            f"{per_min:.0f} jobs/min ({ok} successful, {n - ok - lost} failed, "
            f"{lost} lost, {elapsed:.1f} s)",
            f"bare cwltool one after another {60 / baseline:.0f} jobs/min; "
            f"Prefect alone, {n} flow runs of 3 no-op tasks, {self.args.slots} at a time, "
            f"no tool: {bare_per_min:.0f} runs/min ({bare_ok} completed)",
            f"x{per_min / (60 / baseline):.1f} of cwltool, "
            f"x{per_min / bare_per_min:.2f} of Prefect alone",
        )

    def _wait_all(self, jobs: set[str], timeout: float, last: str | None = None) -> dict[str, str]:
        """Final status of each job, read from the job list once a second (not per job:
        polling hundreds of jobs would load the server being measured).

        With ``last`` (the job submitted last, so about the last to run), only its status
        is read, twice a second, until it is final: reading a list of hundreds of jobs
        every second cost the Prefect server a tenth of a core while it was measured.
        """
        finished: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        if last is not None:
            self.wait(last, timeout=timeout, interval=0.5)
        while time.monotonic() < deadline and len(finished) < len(jobs):
            time.sleep(1.0)
            page = self.session.get(
                f"{self.base}/jobs",
                params={"status": ["successful", "failed", "dismissed"], "limit": 1000},
            ).json()["jobs"]
            finished.update({j["jobID"]: j["status"] for j in page if j["jobID"] in jobs})
        return {job: finished.get(job, "timeout") for job in jobs}

    def memory(self, n: int) -> None:
        jobs = [self.submit("nap", {"seconds": "8"})[0] for _ in range(n)]
        deadline = time.monotonic() + 60
        uss: list[int] = []
        while time.monotonic() < deadline:
            statuses = [self.session.get(f"{self.base}/jobs/{j}").json()["status"] for j in jobs]
            if statuses.count("running") >= min(n, self.args.slots):
                time.sleep(1.0)
                uss = self._job_process_uss()
                break
            time.sleep(0.2)
        self._wait_all(set(jobs), timeout=120)
        zygote = self._zygote()
        zygote_mb = zygote.memory_full_info().uss / 2**20 if zygote else 0
        if uss:
            self.row(
                f"engine memory per in-flight job ({len(uss)} in flight)",
                f"USS median {statistics.median(uss) / 2**20:.1f} MB, "
                f"max {max(uss) / 2**20:.1f} MB",
                f"warm zygote USS {zygote_mb:.0f} MB (shared copy-on-write)",
                "",
            )

    def _zygote(self) -> psutil.Process | None:
        for proc in psutil.process_iter(["cmdline"]):
            if proc.info["cmdline"] and "worker.zygote" in " ".join(proc.info["cmdline"]):
                return proc
        return None

    def _job_process_uss(self) -> list[int]:
        zygote = self._zygote()
        return [c.memory_full_info().uss for c in zygote.children()] if zygote else []

    def history(self, n: int, samples: int = 50) -> None:
        """``GET /jobs?limit=100`` and ``GET /jobs/{id}`` of user ``bench`` with ``n`` of
        its finished jobs in Prefect, against ``GET /conformance``, one after another."""
        from bench import floor
        from bench.history import fill_history, prefect_auth, wait_until_quiet

        fill_s = fill_history(n, os.environ.get("OAPIP_DATABASE_URL") if self.db else None)
        quiet_s = wait_until_quiet(self.stack.processes["prefect-server"].pid)
        job = self.submit()[0]
        self.wait(job)
        lists, gets, plain, prefect = [], [], [], []
        # What the list asks Prefect for: the user's 101 newest runs (one more tells
        # whether there is a next page).
        read_runs = {
            "flow_runs": {"tags": {"all_": ["oapip", "user:bench"]}},
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": 101,
        }
        prefect_session = floor.prefect_session()
        for _ in range(samples):
            t0 = time.perf_counter()
            prefect_session.post(f"{self.api}/flow_runs/filter", json=read_runs).raise_for_status()
            prefect.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = self.session.get(f"{self.base}/jobs?limit=100")
            lists.append(time.perf_counter() - t0)
            assert r.status_code == 200 and len(r.json()["jobs"]) == 100
            t0 = time.perf_counter()
            self.session.get(f"{self.base}/jobs/{job}").raise_for_status()
            gets.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            self.session.get(f"{self.base}/conformance").raise_for_status()
            plain.append(time.perf_counter() - t0)
        base = _pct(plain, 0.5)
        held = requests.post(
            f"{self.api}/flow_runs/count",
            json={"flow_runs": {"tags": {"all_": ["oapip", "user:bench"]}}},
            auth=prefect_auth(),
            timeout=60,
        ).json()
        self.row(
            f"GET /jobs?limit=100, {held} jobs of the user in Prefect, {samples} requests",
            f"p50 {1000 * _pct(lists, 0.5):.0f} ms, p99 {1000 * _pct(lists, 0.99):.0f} ms",
            f"GET /conformance p50 {1000 * base:.1f} ms; Prefect's own read of those 101 "
            f"runs p50 {1000 * _pct(prefect, 0.5):.0f} ms, p99 {1000 * _pct(prefect, 0.99):.0f} "
            f"ms (history filled in {fill_s:.0f} s, server quiet {quiet_s:.0f} s later)",
            f"x{_pct(lists, 0.5) / base:.0f}",
        )
        self.row(
            f"GET /jobs/{{id}} with {n} jobs in history",
            f"p50 {1000 * _pct(gets, 0.5):.0f} ms, p99 {1000 * _pct(gets, 0.99):.0f} ms",
            "",
            f"x{_pct(gets, 0.5) / base:.0f}",
        )

    def run_all(self) -> None:
        """Every measurement but ``wes``, minus those in ``--skip``."""
        args = self.args
        baseline = self.bare_cwltool()
        if "e2e" not in args.skip:
            self.end_to_end(baseline)
        if "latency" not in args.skip:
            self.submit_latency(args.clients)
        if "throughput" not in args.skip:
            self.throughput(args.jobs, baseline)
        if "memory" not in args.skip:
            self.memory(args.slots)
        if args.history:
            self.history(args.history)

    def table(self) -> str:
        return _table(self.rows)


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("measurement", "engine", "baseline (same run)", "ratio")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


def main() -> int:
    args = parse_args(__doc__)
    if args.only in ("transfer", "sandbox"):
        from bench import sandbox, transfer

        if args.only == "sandbox":
            rows = sandbox.run(args.sandbox_runs)
        else:
            rows = transfer.run(args.transfer_mib, args.rounds, args.s3_endpoint)
        print()
        print(f"machine: {os.cpu_count()} cores")
        print(_table(rows))
        return 0
    if args.only == "fairshare":
        from bench import fairshare

        rows = fairshare.run(args)
        print()
        print(f"machine: {os.cpu_count()} cores; Prefect on SQLite")
        print(_table(rows))
        return 0
    bench = Bench(args)
    print(
        f"bench: starting a stack in {bench.home} ({'PostgreSQL' if args.postgres else 'SQLite'})",
        flush=True,
    )
    try:
        bench.start()
        if args.only == "wes":
            from bench import wes

            for process in args.wes_workflows:
                wes.end_to_end(bench, process, args.wes_runs)
        elif args.only == "submit":
            from bench import submit

            submit.burst(bench, args.jobs, args.clients)
        elif args.only == "housekeeping":
            from bench import housekeeping

            housekeeping.run(bench, args.expired)
        else:
            bench.run_all()
    finally:
        bench.stop()
    print()
    print(
        f"machine: {os.cpu_count()} cores; Prefect on {'PostgreSQL' if args.postgres else 'SQLite'}"
    )
    print(bench.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
