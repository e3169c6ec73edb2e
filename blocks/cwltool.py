"""The cwltool backend: CWL on the machine the flow runs on.

Two ways to run, one runner (:mod:`cwlpkg.runner`):

* inside a job process of the fast worker, which is already the leader of a process
  group of its own: cwltool runs in that process through its Python API, with the tool
  loaded once per process revision; dismissing the job kills the whole group;
* anywhere else (a stock Prefect worker): cwltool runs as a child in a new session, so
  cancelling the job kills cwltool and every tool it started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from core.exceptions import BackendError
from core.processes import stop_process_group

__all__ = ["CwltoolBackend", "mark_dedicated_job_process"]

_dedicated_job_process = False
_STEP_DONE = re.compile(r"^\[step [^\]]+\] completed")


def mark_dedicated_job_process() -> None:
    """Declare that this process exists for one job and leads its own process group.

    Called by the fast worker in each job process; the backend then runs cwltool
    in-process instead of starting a subprocess.
    """
    global _dedicated_job_process
    _dedicated_job_process = True


class CwltoolBackend(ExecutionBackend):
    """Run application packages with cwltool on the worker's machine.

    Example:
        ```python
        from blocks import CwltoolBackend
        backend = CwltoolBackend.load("default")
        run = backend.submit(job)
        outcome = run.wait_for_completion()
        ```
    """

    _block_type_name = "cwltool backend"
    _block_type_slug = "cwltool-backend"
    _description = "Runs CWL application packages with cwltool on the worker's machine."

    container_engine: Literal["none", "docker", "podman"] = Field(
        default="none",
        description="Engine for DockerRequirement; `none` runs tools on the host.",
        examples=["podman"],
    )
    allow_no_container: bool = Field(
        default=True,
        description="Allow packages whose DockerRequirement is a hint to run without a "
        "container when no engine is configured.",
    )
    pull_images: bool = Field(
        default=True,
        description="Pull an image the engine does not hold; `false` fails such a tool "
        "at once with a message naming the image.",
    )
    network: str | None = Field(
        default=None,
        description="`--net` of containers whose tool has network access. Unset: the "
        "engine's default network.",
        examples=["host"],
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Folder for packed CWL documents, one file per process revision. "
        "Unset: the job's work directory.",
        examples=["/var/lib/oapip/packages"],
    )
    kill_grace_s: float = Field(
        default=5.0,
        description="Seconds between SIGTERM and SIGKILL when a run is cancelled.",
    )

    def submit(self, job: CwlJob) -> BackendRun:
        """Start ``job``: in this process if it is a dedicated job process, else a subprocess."""
        if self.container_engine == "none" and not self.allow_no_container:
            raise BackendError(
                "the cwltool backend has no container engine and may not run without one"
            )
        request = {
            "workflow": job.workflow,
            "entrypoint": job.entrypoint,
            "job_order": job.job_order,
            "workdir": str(job.workdir),
            "revision": job.revision,
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
            "use_container": self.container_engine != "none",
            "podman": self.container_engine == "podman",
            "pull_images": self.pull_images,
            "network": self.network,
        }
        if _dedicated_job_process:
            return _InProcessRun(request, job)
        return _SubprocessRun.start(request, job, self.kill_grace_s)


class _InProcessRun(BackendRun):
    """cwltool inside the current (dedicated) job process; runs on wait."""

    def __init__(self, request: dict[str, Any], job: CwlJob) -> None:
        self.run_id = f"pid-{os.getpid()}"
        self._request = request
        self._job = job
        self._outputs: dict[str, Any] = {}

    def wait_for_completion(self) -> RunOutcome:
        from cwlpkg.runner import run_cwl

        request = self._request
        outcome = run_cwl(
            request["workflow"],
            request["entrypoint"],
            request["job_order"],
            Path(request["workdir"]),
            revision=request["revision"],
            cache_dir=Path(request["cache_dir"]) if request["cache_dir"] else None,
            use_container=request["use_container"],
            podman=request["podman"],
            pull_images=request["pull_images"],
            network=request["network"],
            logger=self._job.logger,
            on_step=self._job.on_step,
        )
        self._outputs = outcome.outputs
        return RunOutcome(outcome.success, outcome.message)

    def fetch_result(self) -> dict[str, Any]:
        return self._outputs

    def cancel(self) -> None:
        """Nothing to do here: the fast worker kills the job's whole process group."""


class _SubprocessRun(BackendRun):
    """``python -m cwlpkg.runner`` in a new session (process group) of its own."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        folder: Path,
        job: CwlJob,
        grace: float,
        request: dict[str, Any],
    ):
        self.run_id = f"pid-{process.pid}"
        self._request = request
        self._process = process
        self._folder = folder
        self._job = job
        self._grace = grace

    @classmethod
    def start(cls, request: dict[str, Any], job: CwlJob, grace: float) -> _SubprocessRun:
        folder = job.workdir / f"runner-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "request.json").write_text(json.dumps(request))
        process = subprocess.Popen(
            [sys.executable, "-m", "cwlpkg.runner", str(folder / "request.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return cls(process, folder, job, grace, request)

    def wait_for_completion(self) -> RunOutcome:
        assert self._process.stdout is not None
        try:
            for line in self._process.stdout:
                self._job.logger.info(line.rstrip())
                if self._job.on_step is not None and _STEP_DONE.match(line):
                    self._job.on_step()
            self._process.wait()
        except BaseException:
            # The flow is being torn down (cancelled, interrupted): take cwltool with it.
            self.cancel()
            raise
        outcome = self._outcome()
        if outcome is None:
            return RunOutcome(False, f"cwltool exited with code {self._process.returncode}")
        return RunOutcome(outcome["status"] == "success", outcome["message"])

    def _outcome(self) -> dict[str, Any] | None:
        path = self._folder / "outcome.json"
        return json.loads(path.read_text()) if path.exists() else None

    def fetch_result(self) -> dict[str, Any]:
        outcome = self._outcome()
        return outcome["outputs"] if outcome else {}

    def cancel(self) -> None:
        """SIGTERM the run's process group, SIGKILL it after the grace period.

        Containers are not in the group (the engine's service runs them): they are
        removed by their cidfiles.
        """
        stop_process_group(self._process.pid, self._process, self._grace)
        if self._request["use_container"]:
            from cwlpkg.runner import remove_containers

            client = "podman" if self._request["podman"] else "docker"
            remove_containers(Path(self._request["workdir"]), client, self._job.logger)
