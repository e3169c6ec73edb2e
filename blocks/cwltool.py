"""The cwltool backend: CWL on the machine the flow runs on.

Two ways to run, one runner (:mod:`cwlpkg.runner`):

* inside a job process of the fast worker, which is already the leader of a process
  group of its own: cwltool runs in that process through its Python API, with the tool
  loaded once per process revision; dismissing the job kills the whole group;
* anywhere else (a stock Prefect worker): cwltool runs as a child in a new session, so
  cancelling the job kills cwltool and every tool it started.

Containers are not in any of those groups (the container engine's service runs them), and
a killed ``docker`` client leaves its container running: a run with containers is
recorded in the job's work directory until it ends, and :meth:`CwltoolBackend.stop_run`
removes its containers by the cidfiles cwltool wrote.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field

from blocks.backend import (
    BackendRun,
    CwlJob,
    ExecutionBackend,
    RunOutcome,
    in_dedicated_job_process,
)
from core.exceptions import BackendError
from core.processes import stop_process_group
from core.settings import Settings
from cwlpkg.sandbox import SandboxPolicy

__all__ = ["CwltoolBackend"]

_STEP_DONE = re.compile(r"^\[step [^\]]+\] completed")
_CONTAINERS = "containers"  # the run id of a run's containers in the job's records


class CwltoolBackend(ExecutionBackend):
    """Run application packages with cwltool on the worker's machine.

    Example:
        ```python
        from blocks.cwltool import CwltoolBackend
        backend = CwltoolBackend.load("default")
        run = backend.submit(job)
        outcome = run.wait_for_completion()
        ```
    """

    _block_type_name = "cwltool backend"
    _block_type_slug = "cwltool-backend"
    _description = "Runs CWL application packages with cwltool on the worker's machine."
    engine = "cwltool"

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
    sandbox: SandboxPolicy = Field(
        default_factory=SandboxPolicy,
        description="How tools are confined (`OAPIP_SANDBOX*`, cwlpkg.sandbox).",
    )
    kill_grace_s: float = Field(
        default=5.0,
        description="Seconds between SIGTERM and SIGKILL when a run is cancelled.",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The backend of ``OAPIP_CONTAINER_*``; packed CWL cached in ``OAPIP_HOME/packages``."""
        return cls(
            container_engine=settings.execution.container_engine,
            allow_no_container=settings.execution.allow_no_container,
            pull_images=settings.execution.container_pull,
            network=settings.execution.container_network,
            cache_dir=settings.home / "packages",
            sandbox=sandbox_policy(settings),
        )

    def with_site_policy(self, settings: Settings) -> None:
        """The tool sandbox is the site's (``OAPIP_SANDBOX*``), whatever a saved document says."""
        self.sandbox = sandbox_policy(settings)

    @property
    def container_client(self) -> str:
        """The command that removes this backend's containers (``docker`` or ``podman``)."""
        return "podman" if self.container_engine == "podman" else "docker"

    def submit(self, job: CwlJob) -> BackendRun:
        """Start ``job``: in this process if it is a dedicated job process, else a subprocess."""
        if self.container_engine == "none" and not self.allow_no_container:
            raise BackendError(
                "the cwltool backend has no container engine and may not run without one"
            )
        sandboxed = self.sandbox.mode == "containers"
        if sandboxed and self.container_engine == "none":
            raise BackendError(
                "OAPIP_SANDBOX=containers needs a container engine: set OAPIP_CONTAINER_ENGINE"
            )
        request = {
            "workflow": job.workflow,
            "entrypoint": job.entrypoint,
            "job_order": job.job_order,
            "workdir": str(job.workdir),
            "revision": job.revision,
            "cache_dir": str(self.cache_dir) if self.cache_dir else None,
            "use_container": self.container_engine != "none" or sandboxed,
            "podman": self.container_engine == "podman",
            "pull_images": self.pull_images,
            "network": self.network,
            "sandbox": asdict(self.sandbox),
        }
        if request["use_container"]:
            self.record_run(job, _CONTAINERS, {"workdir": str(job.workdir)})
        if in_dedicated_job_process():
            return _InProcessRun(self, request, job)
        return _SubprocessRun.start(self, request, job)

    def stop_run(
        self, handle: dict[str, Any], logger: logging.Logger | logging.LoggerAdapter
    ) -> None:
        """Remove (killing them if need be) the containers a run's cidfiles name."""
        from cwlpkg.runner import remove_containers

        remove_containers(Path(handle["workdir"]), self.container_client, logger)


def sandbox_policy(settings: Settings) -> SandboxPolicy:
    """The tool sandbox of ``OAPIP_SANDBOX*`` within the site's per-job maxima."""
    execution = settings.execution
    return SandboxPolicy(
        mode=execution.sandbox,
        uid=execution.sandbox_uid,
        default_image=execution.default_image,
        network=execution.sandbox_network,
        max_pids=execution.sandbox_max_pids,
        max_ram_mib=execution.max_job_ram_mib,
        max_cores=execution.max_job_cores,
        max_cpu_s=execution.sandbox_max_cpu_s,
        max_file_mib=execution.sandbox_max_file_mib,
    )


class _InProcessRun(BackendRun):
    """cwltool inside the current (dedicated) job process; runs on wait."""

    def __init__(self, backend: CwltoolBackend, request: dict[str, Any], job: CwlJob) -> None:
        self.run_id = f"pid-{os.getpid()}"
        self._backend = backend
        self._request = request
        self._job = job
        self._outputs: dict[str, Any] = {}

    def wait_for_completion(self) -> RunOutcome:
        from cwlpkg.runner import run_cwl

        request = self._request
        try:
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
                sandbox=SandboxPolicy(**request["sandbox"]),
                logger=self._job.logger,
                on_step=self._job.on_step,
            )
        finally:
            # run_cwl removes its containers however it ends, unless the process is killed.
            self._backend.forget_run(self._job, _CONTAINERS)
        self._outputs = outcome.outputs
        return RunOutcome(outcome.success, outcome.message)

    def fetch_result(self) -> dict[str, Any]:
        return self._outputs

    def cancel(self) -> None:
        """Nothing to do here: the fast worker kills the job's whole process group, then
        stops the recorded run (its containers)."""


class _SubprocessRun(BackendRun):
    """``python -m cwlpkg.runner`` in a new session (process group) of its own."""

    def __init__(
        self,
        backend: CwltoolBackend,
        process: subprocess.Popen[str],
        folder: Path,
        job: CwlJob,
        request: dict[str, Any],
    ):
        self.run_id = f"pid-{process.pid}"
        self._backend = backend
        self._request = request
        self._process = process
        self._folder = folder
        self._job = job

    @classmethod
    def start(cls, backend: CwltoolBackend, request: dict[str, Any], job: CwlJob) -> _SubprocessRun:
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
        return cls(backend, process, folder, job, request)

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
        # The runner removed its containers on its way out.
        self._backend.forget_run(self._job, _CONTAINERS)
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
        stop_process_group(self._process.pid, self._process, self._backend.kill_grace_s)
        if self._request["use_container"]:
            from cwlpkg.runner import remove_containers

            remove_containers(
                Path(self._request["workdir"]), self._backend.container_client, self._job.logger
            )
        self._backend.forget_run(self._job, _CONTAINERS)
