"""The one contract every execution backend implements.

A backend Block turns a :class:`CwlJob` into a :class:`BackendRun` (``submit``); the run
is waited for (``wait_for_completion``), asked for its CWL output object
(``fetch_result``) and can be cancelled (``cancel``). The names follow Prefect's
``JobBlock``/``JobRun`` contract; the methods are synchronous because the execution flow
runs them in its own process. Flows depend on this module only: adding a backend
(HTCondor through WES, another cluster) means one new Block, nothing in the gateway.

A run that lives outside the job's process (a WES run, a pod) registers itself with
:func:`track_remote_run` while it runs: when the job is dismissed, the fast worker asks the
job process to :func:`cancel_remote_runs` before it kills the process group, which would
otherwise leave the remote run going.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.blocks.core import Block

__all__ = [
    "BackendRun",
    "CwlJob",
    "ExecutionBackend",
    "RunOutcome",
    "cancel_remote_runs",
    "track_remote_run",
    "untrack_remote_run",
]


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

    @abstractmethod
    def submit(self, job: CwlJob) -> BackendRun:
        """Start ``job`` and return its run."""


_remote_runs: list[BackendRun] = []
_remote_runs_lock = threading.Lock()


def track_remote_run(run: BackendRun) -> None:
    """Remember ``run`` as running outside this process until :func:`untrack_remote_run`."""
    with _remote_runs_lock:
        _remote_runs.append(run)


def untrack_remote_run(run: BackendRun) -> None:
    """Forget ``run`` (it ended, or it was cancelled)."""
    with _remote_runs_lock:
        if run in _remote_runs:
            _remote_runs.remove(run)


def cancel_remote_runs() -> int:
    """Cancel every remote run this process still tracks; each ``cancel`` waits for its end.

    Returns how many there were. Errors are logged, not raised: the caller is tearing
    the job down either way.
    """
    with _remote_runs_lock:
        runs = list(_remote_runs)
    for run in runs:
        try:
            run.cancel()
        except Exception:
            logging.getLogger("oapip.backend").exception("could not cancel run %s", run.run_id)
        untrack_remote_run(run)
    return len(runs)
