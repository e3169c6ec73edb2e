"""An execution backend that exists only in the tests, added the way a site adds one.

Nothing in the engine names this module: a stack started with
``OAPIP_BACKEND_MODULES='["tests.blocks.plugin_backend"]'`` imports it, and the one
class below registers itself. It runs no tool: every output of the process is a text
file saying which backend made it, for which job, with which greeting (a Block field, so
a saved document of this type is told from the one built from settings) and inputs.
Each run records itself like a run living outside the job's processes, so that stopping
a recorded run can be tested too.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from pydantic import Field

import cwlpkg as cwl
from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from blocks.registry import register

__all__ = ["ENGINE", "PluginBackend"]

ENGINE = "test-plugin"


@register
class PluginBackend(ExecutionBackend):
    """Writes a file naming itself for every output of a process (tests only).

    Example:
        ```python
        from tests.blocks.plugin_backend import PluginBackend
        backend = PluginBackend.load("custom")
        ```
    """

    _block_type_name = "Test plugin backend"
    _block_type_slug = "test-plugin-backend"
    _description = "An execution backend that exists only in the engine's tests."
    engine = ENGINE

    greeting: str = Field(
        default="made by the test plugin backend",
        description="First words of every output file.",
        examples=["hello from a saved block"],
    )

    stopped: ClassVar[list[dict[str, Any]]] = []
    """Handles given to :meth:`stop_run` in this process, oldest first."""

    def submit(self, job: CwlJob) -> BackendRun:
        """Record the run (as a remote backend would) and return it."""
        run = _PluginRun(self, job)
        self.record_run(job, run.run_id, {"job_id": job.job_id})
        return run

    def stop_run(
        self, handle: dict[str, Any], logger: logging.Logger | logging.LoggerAdapter
    ) -> None:
        """Remember the handle; say so in the job's log."""
        logger.warning("stopping the test plugin run of job %s", handle["job_id"])
        type(self).stopped.append(handle)


class _PluginRun(BackendRun):
    def __init__(self, backend: PluginBackend, job: CwlJob) -> None:
        self.run_id = f"plugin-{job.job_id}"
        self._backend = backend
        self._job = job
        self._outputs: dict[str, Any] = {}

    def wait_for_completion(self) -> RunOutcome:
        job = self._job
        job.outdir.mkdir(parents=True, exist_ok=True)
        text = f"{self._backend.greeting}: job {job.job_id} with {json.dumps(job.job_order)}\n"
        for output in cwl.describe(job.workflow, job.entrypoint)["outputs"]:
            path = job.outdir / f"{output}.txt"
            path.write_text(text)
            self._outputs[output] = {"class": "File", "location": path.as_uri(), "path": str(path)}
        job.logger.info("the test plugin backend wrote %s", ", ".join(self._outputs))
        self._backend.forget_run(job, self.run_id)
        return RunOutcome(True)

    def fetch_result(self) -> dict[str, Any]:
        return self._outputs

    def cancel(self) -> None:
        self._backend.forget_run(self._job, self.run_id)
