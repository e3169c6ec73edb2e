"""Session fixture: a real HPC site (single-node Slurm + Toil WES behind basic auth).

``infrastructure/hpc/hpc.sh up`` starts it on a fresh machine (installing slurm-wlm,
munge and Toil's own virtualenv when they are missing) in a folder of its own, with the
stand-in tools of the session (``convert.sh``) first on the PATH of Toil's Slurm jobs;
``hpc.sh down`` stops it by PID at the end. Only tests that ask for ``hpc`` start it.

The engine reaches the site through a saved backend block (``toil-wes-backend/hpc``) that
processes name at deploy time (``"executionEngine": "toil-wes-backend/hpc"``): the
session's engine keeps running everything else on cwltool.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Engine

HPC_SH = Path(__file__).resolve().parents[1] / "infrastructure" / "hpc" / "hpc.sh"
HPC_BLOCK = "toil-wes-backend/hpc"
# Install (first time: apt and a Toil virtualenv) plus start.
UP_TIMEOUT_S = 900


@dataclass
class Hpc:
    """A running HPC site and where to reach it."""

    home: Path
    wes_url: str  # behind the auth proxy, ends with /ga4gh/wes/v1/
    user: str
    password: str
    slurm_conf: str
    up_s: float  # how long `hpc.sh up` took

    def slurm(self, *argv: str) -> str:
        """Output of a Slurm client command against this cluster."""
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=True,
            env={"SLURM_CONF": self.slurm_conf, "PATH": "/usr/bin:/bin"},
        ).stdout

    def finished_slurm_jobs(self, wes_run_id: str) -> list[dict[str, str]]:
        """Slurm jobs of a WES run that ended, from the jobcomp log (accounting is off).

        Toil's leader submits from the run's execution folder, so each job's ``WorkDir``
        names the run.
        """
        path = self.home / "log" / "jobcomp.log"
        lines = path.read_text().splitlines() if path.exists() else []
        jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in lines]
        return [job for job in jobs if wes_run_id in job.get("WorkDir", "")]

    def queued_slurm_jobs(self) -> list[str]:
        """Ids of the jobs Slurm has pending or running now."""
        return self.slurm("squeue", "-h", "-o", "%i").split()


@pytest.fixture(scope="session")
def hpc(tool_bin: Path) -> Iterator[Hpc]:
    # munged insists that every folder above its socket is searchable by everyone:
    # pytest's temporary folders are not, so the site lives in a folder of its own.
    home = Path(tempfile.mkdtemp(prefix="oapip-hpc-"))
    home.chmod(0o755)
    env_file = home / "wes.env"
    env = {**os.environ, "HPC_HOME": str(home), "HPC_JOB_PATH": str(tool_bin)}
    started = time.monotonic()
    up = subprocess.run(
        ["bash", str(HPC_SH), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S,
        check=False,
    )
    up_s = time.monotonic() - started
    try:
        if up.returncode != 0:
            pytest.fail(f"hpc.sh up failed ({up.returncode}):\n{up.stderr[-3000:]}")
        values = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        print(f"\nHPC site (Slurm + Toil WES) up in {up_s:.1f} s")
        yield Hpc(
            home=home,
            wes_url=values["OAPIP_TOIL_WES_URL"],
            user=values["OAPIP_TOIL_WES_USER"],
            password=values["OAPIP_TOIL_WES_PASSWORD"],
            slurm_conf=values["SLURM_CONF"],
            up_s=up_s,
        )
    finally:
        subprocess.run(["bash", str(HPC_SH), "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def save_backend_block(engine: Engine, name: str, **fields: object) -> str:
    """Save a ``ToilWesBackend`` document in ``engine``'s Prefect; return its load name."""
    from prefect.settings import temporary_settings

    from blocks.toil_wes import ToilWesBackend

    with temporary_settings(updates=engine.prefect_settings()):
        ToilWesBackend(**fields).save(name, overwrite=True)
    return f"toil-wes-backend/{name}"


@pytest.fixture(scope="session")
def hpc_engine(engine: Engine, hpc: Hpc) -> Engine:
    """The session's engine with the HPC site saved as backend block ``HPC_BLOCK``."""
    save_backend_block(
        engine, HPC_BLOCK.split("/")[1], url=hpc.wes_url, user=hpc.user, password=hpc.password
    )
    return engine
