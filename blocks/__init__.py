"""Prefect Block types that hold what operators configure: execution backends, storage
(local and S3), the stage-in S3 source and the Workspace API.

Register them with the Prefect server with ``prefect block register -m blocks`` (the
engine's ``oapip`` command does it at start-up).
"""

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from blocks.calrissian import CalrissianBackend
from blocks.cwltool import CwltoolBackend
from blocks.s3 import S3ResultStorage, S3Source
from blocks.storage import LocalResultStorage, ResultStorage
from blocks.toil_wes import ToilWesBackend
from blocks.workspace import WorkspaceApi

__all__ = [
    "BackendRun",
    "CalrissianBackend",
    "CwlJob",
    "CwltoolBackend",
    "ExecutionBackend",
    "LocalResultStorage",
    "ResultStorage",
    "RunOutcome",
    "S3ResultStorage",
    "S3Source",
    "ToilWesBackend",
    "WorkspaceApi",
]
