"""The HPC site for ``python -m bench --only wes``, and its baseline: WES without the engine.

``HpcSite`` starts ``infrastructure/hpc/hpc.sh`` (single-node Slurm + Toil WES behind basic
auth) in a folder of its own; ``direct_run`` submits a packed workflow straight to WES
the way a bare client would (one multipart ``POST /runs``, then a status poll every
0.1 s), so the engine's end-to-end time can be set against it in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

HPC_SH = Path(__file__).resolve().parents[1] / "infrastructure" / "hpc" / "hpc.sh"
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
