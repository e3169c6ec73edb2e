"""``python -m bench --only wes``: the HPC site, its baseline (WES without the engine), and
the measurement that sets one against the other.

``HpcSite`` starts ``infrastructure/hpc/hpc.sh`` (single-node Slurm + Toil WES behind basic
auth) in a folder of its own; ``direct_run`` submits a packed workflow straight to WES
the way a bare client would (one multipart ``POST /runs``, then a status poll every
0.1 s); ``end_to_end`` runs the same job through the engine and straight to WES,
alternately, in the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from bench.__main__ import Bench

__all__ = ["HpcSite", "end_to_end"]

HERE = Path(__file__).resolve().parent
HPC_SH = HERE.parent / "infrastructure" / "hpc" / "hpc.sh"
FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


class HpcSite:
    """A running Slurm + Toil WES site; ``settings`` holds its ``OAPIP_TOIL_WES_*`` values."""

    def __init__(self) -> None:
        # munged wants every folder above its socket searchable by everyone.
        self.home = Path(tempfile.mkdtemp(prefix="oapip-bench-hpc-"))
        self.home.chmod(0o755)
        self.env = {**os.environ, "HPC_HOME": str(self.home)}
        self.settings: dict[str, str] = {}
        self.up_s = 0.0

    def start(self) -> None:
        started = time.perf_counter()
        subprocess.run(["bash", str(HPC_SH), "up"], env=self.env, check=True)
        self.up_s = time.perf_counter() - started
        lines = (self.home / "wes.env").read_text().splitlines()
        self.settings = dict(line.split("=", 1) for line in lines if "=" in line)

    def stop(self) -> None:
        subprocess.run(["bash", str(HPC_SH), "down"], env=self.env, check=False)
        shutil.rmtree(self.home, ignore_errors=True)

    def direct_run(self, workflow: dict[str, Any], params: dict[str, Any]) -> float:
        """Seconds from ``POST /runs`` until WES reports the run COMPLETE."""
        url = self.settings["OAPIP_TOIL_WES_URL"]
        auth = (self.settings["OAPIP_TOIL_WES_USER"], self.settings["OAPIP_TOIL_WES_PASSWORD"])
        started = time.perf_counter()
        answer = requests.post(
            f"{url}runs",
            data={
                "workflow_url": "workflow.cwl#main",
                "workflow_type": "CWL",
                "workflow_type_version": workflow.get("cwlVersion", "v1.2"),
                "workflow_params": json.dumps(params),
                "workflow_engine_parameters": "{}",
            },
            files=[("workflow_attachment", ("workflow.cwl", json.dumps(workflow)))],
            auth=auth,
            timeout=60,
        )
        answer.raise_for_status()
        run_id = answer.json()["run_id"]
        while True:
            state = requests.get(f"{url}runs/{run_id}/status", auth=auth, timeout=60).json()
            if state["state"] in FINAL:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        if state["state"] != "COMPLETE":
            raise RuntimeError(f"direct WES run {run_id} ended {state['state']}")
        return elapsed


def end_to_end(bench: Bench, process: str, n: int) -> None:
    """A job through the engine on Toil WES vs. the same packed workflow straight to
    WES, alternately; adds the rows to ``bench``'s table.

    The engine's time runs from the execute request to the job's ``finished`` time
    (its flow run's end) as its status reports it, polled every 0.5 s: polling the
    engine as often as the direct client polls WES (0.1 s) would take CPU from Toil on
    a small machine.
    """
    import cwlpkg as cwl

    doc = cwl.parse_document((HERE / f"{process}.cwl").read_text())
    packed = cwl.pack(doc, process)
    params = {"message": "hello"}
    bench.wait(bench.submit(process, params)[0], timeout=600)  # warm: loads the package
    engine, direct, phases = [], [], []
    for _ in range(n):
        direct.append(bench.site.direct_run(packed, params))
        t0 = time.time()
        job, _, _ = bench.submit(process, params)
        assert bench.wait(job, timeout=600, interval=0.5) == "successful"
        finished = bench.session.get(f"{bench.base}/jobs/{job}").json()["finished"]
        end = dt.datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
        engine.append(end - t0)
        phases.append(_phases(bench.session, job, t0, end))
    e2e, bare = statistics.median(engine), statistics.median(direct)
    bench.row(
        f"{process} job on Slurm via Toil WES, end-to-end, median of {n}",
        f"{e2e:.2f} s (min {min(engine):.2f}, max {max(engine):.2f})",
        f"straight to WES {bare:.2f} s (min {min(direct):.2f}, max {max(direct):.2f})",
        f"ratio {e2e / bare:.3f}",
    )
    before, during, after = (statistics.median(p[i] for p in phases) for i in range(3))
    bench.row(
        "  of which (medians): until POST /runs; WES run as seen by the job; after",
        f"{before:.2f} s; {during:.2f} s; {after:.2f} s",
        "",
        "",
    )


def _phases(
    session: requests.Session, job: str, start: float, end: float
) -> tuple[float, float, float]:
    """Seconds before the job's WES submission, until it saw the run end, and after."""
    logs = session.post(
        f"{os.environ['PREFECT_API_URL']}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [job]}}, "limit": 200},
    ).json()

    def at(marker: str) -> float:
        stamp = next(log["timestamp"] for log in logs if marker in log["message"])
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    submitted, ended = at("submitted to Toil WES"), at("is COMPLETE")
    return submitted - start, ended - submitted, end - ended
