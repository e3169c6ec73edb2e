"""The one contract every execution backend implements.

A backend Block turns a :class:`CwlJob` into a :class:`BackendRun` (``submit``); the run
is waited for (``wait_for_completion``), asked for its CWL output object
(``fetch_result``) and can be cancelled (``cancel``). The names follow Prefect's
``JobBlock``/``JobRun`` contract; the methods are synchronous because the execution flow
runs them in its own process. Flows depend on this module and :mod:`blocks.registry`
only: adding a backend (HTCondor through WES, another cluster) means one new Block,
nothing in the gateway, the flow or the worker.

Besides running jobs, every backend declares its ``engine`` name, how it is built from
the engine's settings (:meth:`ExecutionBackend.from_settings`), whether those settings let
it run at all (:meth:`ExecutionBackend.unavailable_reason`), and how a run left behind by
a job process that is gone is stopped (:meth:`ExecutionBackend.stop_run`).

Runs that live outside the job's process tree (a WES run, a Kubernetes namespace,
containers in the container engine's service) would outlive a job process that is
killed (a dismissed job's process group is SIGKILLed; a job process can crash). Such a
run is recorded while it runs, in the job's work directory, with
:meth:`ExecutionBackend.record_run` (``<workdir>/runs/<run id>.json``: the backend's name
and a small JSON handle) and forgotten with :meth:`ExecutionBackend.forget_run` when it
has ended or was cancelled. Whoever ends a job process abnormally (the fast worker) then
stops what is still recorded, through :func:`blocks.registry.stop_recorded_runs`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from prefect.blocks.core import Block

from core.settings import Settings

__all__ = [
    "BackendRun",
    "CwlJob",
    "ExecutionBackend",
    "RecordedRun",
    "RunOutcome",
    "in_dedicated_job_process",
    "mark_dedicated_job_process",
    "recorded_runs",
]

RUNS_FOLDER = "runs"
"""Folder of a job's work directory that holds the records of its outside runs."""

_dedicated_job_process = False


def mark_dedicated_job_process() -> None:
    """Declare that this process exists for one job and leads its own process group.

    Called by the fast worker's zygote, so every job process forked from it inherits it:
    a backend may then run its work inside the process (killing the group ends it).
    """
    global _dedicated_job_process
    _dedicated_job_process = True


def in_dedicated_job_process() -> bool:
    """Whether :func:`mark_dedicated_job_process` was called in this process."""
    return _dedicated_job_process


@dataclass(frozen=True)
class CwlJob:
    """Everything a backend needs to run one job.

    ``workflow`` is a packed, self-contained CWL document and ``entrypoint`` the id of the
    process in it to run; ``job_order`` holds CWL input values whose File/Directory
    locations are already local (``file://``) after stage-in.
    """

    job_id: str
    process_id: str
    workflow: dict[str, Any]
    entrypoint: str
    job_order: dict[str, Any]
    workdir: Path
    revision: str = ""
    logger: logging.Logger | logging.LoggerAdapter = field(
        default_factory=lambda: logging.getLogger("oapip.backend"), compare=False
    )
    on_step: Callable[[], None] | None = field(default=None, compare=False)
    """Called each time a workflow step completes (progress reporting)."""

    @property
    def outdir(self) -> Path:
        """Folder the backend leaves the job's outputs in."""
        return self.workdir / "outputs"


@dataclass(frozen=True)
class RunOutcome:
    """How a backend run ended: ``success`` or not, and a message naming the cause."""

    success: bool
    message: str = ""


@dataclass(frozen=True)
class RecordedRun:
    """A run recorded in a job's work directory by :meth:`ExecutionBackend.record_run`.

    Attributes:
        backend: the name the backend is built by again: its engine name (``toil``) or
            its saved Block document (``toil-wes-backend/hpc``).
        run_id: the run's id in its backend.
        handle: what the backend's :meth:`~ExecutionBackend.stop_run` needs, e.g.
            ``{"run_id": "4f1c…"}`` or ``{"namespace": "oapip-echo-…"}``.
        path: the record's file.
    """

    backend: str
    run_id: str
    handle: dict[str, Any]
    path: Path


class BackendRun(ABC):
    """One job running in a backend."""

    run_id: str
    run_url: str | None = None
    """Where the backend shows this run (a WES run URL), if it has such a place."""

    @abstractmethod
    def wait_for_completion(self) -> RunOutcome:
        """Block until the run ends; forward its log lines to the job's logger."""

    @abstractmethod
    def fetch_result(self) -> dict[str, Any]:
        """The CWL output object, with ``file://`` (or ``s3://``) locations."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the run and everything it started; return when it is gone."""


class ExecutionBackend(Block, ABC):
    """A place CWL runs: the local machine, a Kubernetes cluster, an HPC site."""

    engine: ClassVar[str]
    """The name processes and ``OAPIP_EXECUTION_ENGINE`` choose this backend by."""

    @classmethod
    def unavailable_reason(cls, settings: Settings) -> str | None:
        """Why this backend cannot be built from ``settings`` (None: it can).

        Said to whoever asks for it: ``executionEngine `toil` is not available here:
        <reason>``. The default: always available.
        """
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The backend as the engine's settings configure it. The default: its defaults."""
        return cls()

    def with_site_policy(self, settings: Settings) -> None:  # noqa: B027 - optional hook
        """Impose what the site decides, whatever a saved Block document says (the cwltool
        backend: its tool sandbox). The default: nothing."""

    @abstractmethod
    def submit(self, job: CwlJob) -> BackendRun:
        """Start ``job`` and return its run."""

    def stop_run(
        self, handle: dict[str, Any], logger: logging.Logger | logging.LoggerAdapter
    ) -> None:
        """Stop a run this backend recorded (``handle``) whose job process is gone.

        Return when it is gone; log what was done to ``logger`` (the job's log). Only
        backends that call :meth:`record_run` need it.
        """
        raise NotImplementedError(f"{type(self).__name__} records no runs to stop")

    @property
    def reference(self) -> str:
        """The name this backend is built by again: its saved Block document
        (``<block type slug>/<name>``) if it was loaded from one, else its engine name."""
        if self._block_document_name and not self._is_anonymous:
            return f"{self.get_block_type_slug()}/{self._block_document_name}"
        return self.engine

    def record_run(self, job: CwlJob, run_id: str, handle: dict[str, Any]) -> None:
        """Record ``run_id`` of ``job`` as running outside the job's process tree until
        :meth:`forget_run`; ``handle`` is what :meth:`stop_run` will be given."""
        path = _record_path(job.workdir, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"backend": self.reference, "run_id": run_id, "handle": handle}
        # Written whole or not at all: the job process may be killed at any moment.
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(record))
        os.replace(partial, path)

    def forget_run(self, job: CwlJob, run_id: str) -> None:
        """The run ended (or was cancelled) here: nobody needs to stop it any more."""
        _record_path(job.workdir, run_id).unlink(missing_ok=True)


def _record_path(workdir: Path, run_id: str) -> Path:
    return workdir / RUNS_FOLDER / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id)}.json"


def recorded_runs(workdir: Path) -> list[RecordedRun]:
    """The runs still recorded in job work directory ``workdir``.

    A record that cannot be read (it should not happen: records are replaced whole) is
    logged and left out.
    """
    found: list[RecordedRun] = []
    for path in sorted((workdir / RUNS_FOLDER).glob("*.json")):
        try:
            record = json.loads(path.read_text())
            found.append(
                RecordedRun(
                    str(record["backend"]), str(record["run_id"]), dict(record["handle"]), path
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logging.getLogger("oapip.backend").warning("unreadable run record %s: %s", path, exc)
    return found
