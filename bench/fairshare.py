"""``python -m bench --only fairshare``: what per-user limits cost a burst of jobs.

The same burst (``--jobs`` echo jobs submitted at once by ``USERS`` users in turn) runs
on two stacks started one after the other in the same run: one with the limits off
(``OAPIP_USER_MAX_RUNNING=0``, ``OAPIP_USER_MAX_QUEUED=0``), one with them on (a running
limit of ``LIMIT`` per user: a Prefect concurrency limit per user, a leased slot per job,
the fair pick-up; a queue limit above the burst). ``USERS`` x ``LIMIT`` is above the
worker's slots, so the figure is the machinery's cost, not the limit's effect.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.__main__ import Bench

__all__ = ["run"]

USERS = 6
LIMIT = 4


def run(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """Both bursts; one table row comparing them."""
    figures = {}
    for mode, running, queued in (("off", "0", "0"), ("on", str(LIMIT), str(args.jobs + 1))):
        # A process per stack: Prefect's client settings are read once per process.
        env = {**os.environ, "OAPIP_USER_MAX_RUNNING": running, "OAPIP_USER_MAX_QUEUED": queued}
        done = subprocess.run(
            [sys.executable, "-m", "bench.fairshare", str(args.jobs), str(args.slots)],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        figures[mode] = tuple(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  limits {mode}: {_text(*figures[mode])}", flush=True)
    (off, *_), (on, *_) = figures["off"], figures["on"]
    return [
        (
            f"throughput, {args.jobs} echo jobs of {USERS} users at once, limits on "
            f"({LIMIT} running per user)",
            _text(*figures["on"]),
            f"limits off: {_text(*figures['off'])}",
            f"x{on / off:.2f}",
        )
    ]


def _text(per_min: float, ok: int, failed: int, elapsed: float) -> str:
    return f"{per_min:.0f} jobs/min ({ok} successful, {failed} not, {elapsed:.1f} s)"


def _burst(args: argparse.Namespace) -> tuple[float, int, int, float]:
    """Start a stack, submit the burst, wait for every job; jobs/min and counts."""
    from bench.__main__ import HERE
    from bench.__main__ import Bench as _Bench

    bench = _Bench(args)
    try:
        bench.start()
        users = [f"fair{n}" for n in range(USERS)]
        root = bench.base.removesuffix("/bench/ogc-api")
        for user in users:
            bench.session.post(
                f"{root}/{user}/ogc-api/processes",
                data=(HERE / "echo.cwl").read_text(),
                headers={"Content-Type": "application/cwl+yaml"},
            ).raise_for_status()

        def submit(n: int) -> tuple[str, str]:
            user = users[n % USERS]
            r = bench.session.post(
                f"{root}/{user}/ogc-api/processes/echo/execution",
                json={"inputs": {"message": "hello"}},
                headers={"Prefer": "respond-async"},
            )
            return user, r.json()["jobID"] if r.status_code == 201 else ""

        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(16) as pool:
            submitted = list(pool.map(submit, range(args.jobs)))
        ok = _wait(bench, root, users, {job for _, job in submitted if job})
        elapsed = time.perf_counter() - t0
        return 60 * ok / elapsed, ok, args.jobs - ok, elapsed
    finally:
        bench.stop()


def _wait(bench: Bench, root: str, users: list[str], jobs: set[str]) -> int:
    """Wait until every job is final (each user's job list read once a second); how
    many succeeded."""
    finished: dict[str, str] = {}
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline and len(finished) < len(jobs):
        time.sleep(1.0)
        for user in users:
            page = bench.session.get(
                f"{root}/{user}/ogc-api/jobs",
                params={"status": ["successful", "failed", "dismissed"], "limit": 1000},
            ).json()["jobs"]
            finished.update({j["jobID"]: j["status"] for j in page if j["jobID"] in jobs})
    return sum(s == "successful" for s in finished.values())


if __name__ == "__main__":
    jobs, slots = int(sys.argv[1]), int(sys.argv[2])
    burst_args = argparse.Namespace(
        jobs=jobs, slots=slots, postgres=False, only="fairshare", clients=0, history=0, skip=[]
    )
    print(json.dumps(_burst(burst_args)), flush=True)
