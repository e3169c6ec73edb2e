"""Prefect Block types that hold what operators configure: execution backends and storage.

Register them with the Prefect server with ``prefect block register -m blocks`` (the
engine's ``oapip`` command does it at start-up).
"""

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from blocks.calrissian import CalrissianBackend
from blocks.cwltool import CwltoolBackend
from blocks.storage import LocalResultStorage, ResultStorage

__all__ = [
    "BackendRun",
    "CalrissianBackend",
    "CwlJob",
    "CwltoolBackend",
    "ExecutionBackend",
    "LocalResultStorage",
    "ResultStorage",
    "RunOutcome",
]
