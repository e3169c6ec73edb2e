"""Prefect Block types that hold what operators configure: execution backends
(:mod:`blocks.backend` is their contract, :mod:`blocks.registry` finds them), application
packages, storage (local and S3), the stage-in S3 source and the Workspace API.

Importing the package imports no backend: each is imported when the registry is first
asked for it by name. ``oapip setup`` registers the block types with the Prefect server;
``prefect block register -m blocks.catalog`` does the same for all of them.
"""

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome

__all__ = ["BackendRun", "CwlJob", "ExecutionBackend", "RunOutcome"]
