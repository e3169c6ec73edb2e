"""Prefect Block types that hold what operators configure: execution backends and storage.

Register them with the Prefect server with ``prefect block register -m blocks`` (the
engine's ``oapip`` command does it at start-up).
"""

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from blocks.cwltool import CwltoolBackend
from blocks.storage import LocalResultStorage, ResultStorage
from blocks.toil_wes import ToilWesBackend

__all__ = [
    "BackendRun",
    "CwlJob",
    "CwltoolBackend",
    "ExecutionBackend",
    "LocalResultStorage",
    "ResultStorage",
    "RunOutcome",
    "ToilWesBackend",
]
