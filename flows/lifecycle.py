"""A job that fails during stage-out leaves nothing behind (or says where it kept it).

Stage-out uploads output after output; when one fails, the ones before it are already
in the result store, where nothing would point at them. :func:`failed_stage_out` removes
them (``blocks.result_stores.discard_partial_results``), or, when the operator keeps
failed jobs' outputs for debugging (``OAPIP_KEEP_FAILED_OUTPUTS``), says in the job's
message where they are. A job dismissed or killed mid-way is cleaned the same way by the
worker (``worker.endings``).
"""

from __future__ import annotations

from blocks.result_stores import discard_partial_results
from blocks.storage import ResultStorage
from core.exceptions import EngineError, StagingError
from core.settings import Settings

__all__ = ["failed_stage_out"]


def failed_stage_out(
    exc: Exception, settings: Settings, storage: ResultStorage, job_id: str
) -> Exception:
    """The error the job fails with when stage-out raised ``exc``: the same failure,
    with what became of the outputs uploaded before it."""
    outcome = discard_partial_results(settings, [storage], job_id=job_id)
    if not outcome:
        return exc
    detail = exc.detail if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
    return StagingError(f"{detail}; {outcome}")
