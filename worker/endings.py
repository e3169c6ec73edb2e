"""How the fast worker ends a job whose process ended abnormally (dismissed, crashed,
killed, or orphaned by a worker that is gone).

Three steps, in this order: stop what the job's backend left running outside the process
group (:func:`stop_left_runs`: a WES run, a Kubernetes namespace, containers) and remove
what its stage-out had uploaded, write what was done to the job's Prefect log, then
record the job's final state (:func:`record_end`). A dismissed job thus reads
``dismissed`` only once its WES run and batch jobs are gone. Writes to Prefect are
repeated while its server is away (:func:`retrying`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import LogCreate
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Cancelled, Crashed

from blocks.registry import stop_recorded_runs
from blocks.result_stores import discard_partial_results, job_stores
from core.naming import job_id_of, user_of
from core.retry import Backoff, retry_async
from core.settings import Settings

__all__ = ["END_RETRY_S", "record_end", "retrying", "stop_left_runs"]

logger = logging.getLogger("oapip.worker")

END_RETRY_S = 300.0  # how long recording a job's end is retried while Prefect is away, s
# Waits between attempts while the Prefect server is away (a restart): 0.5 s doubling to
# 10 s, for up to END_RETRY_S.
_PREFECT_AWAY = Backoff(first_s=0.5, factor=2.0, max_s=10.0, attempts=None, deadline_s=END_RETRY_S)

T = TypeVar("T")


async def retrying(func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """``await func(*args, **kwargs)``, retried while the Prefect server cannot be reached
    or answers 5xx (a restart), for up to ``END_RETRY_S`` seconds."""
    return await retry_async(
        lambda: func(*args, **kwargs),
        backoff=_PREFECT_AWAY,
        retryable=_prefect_away,
        on_retry=lambda exc, wait: logger.warning(
            "Prefect server unavailable (%s); retrying in %.1f s", exc, wait
        ),
    )


def _prefect_away(exc: Exception) -> bool:
    """Whether ``exc`` says the Prefect server is away (unreachable, or answering 5xx)."""
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


async def stop_left_runs(client: PrefectClient, settings: Settings, flow_run_id: uuid.UUID) -> None:
    """Stop the runs the job's process left recorded in its work directory and write what
    was done to the job's Prefect log. Failures are logged, never raised."""
    job_log = _JobLog(flow_run_id)
    try:
        # The job's folder is named by its jobID (the run's job tag, else its id).
        run = await retrying(client.read_flow_run, flow_run_id)
        folder = settings.job_dir(job_id_of(run.tags, run.id))
        # Blocking (a WES cancel waits for the run's end): off the event loop.
        await asyncio.to_thread(stop_recorded_runs, folder, settings, job_log.logger)
    except Exception:
        logger.exception("could not stop the runs of flow run %s", flow_run_id)
    try:
        await _discard_partial_results(client, settings, flow_run_id, job_log.logger)
    except Exception:
        logger.exception("could not remove the partial results of flow run %s", flow_run_id)
    if not job_log.logs:
        return
    try:
        await retrying(client.create_logs, job_log.logs)
    except Exception:
        logger.exception("could not write to the log of flow run %s", flow_run_id)


async def _discard_partial_results(
    client: PrefectClient, settings: Settings, flow_run_id: uuid.UUID, log: logging.Logger
) -> None:
    """A job that did not complete (dismissed or killed during stage-out) leaves no
    results behind, unless the operator keeps them (``blocks.result_stores``)."""
    flow_run = await retrying(client.read_flow_run, flow_run_id)
    if flow_run.state and flow_run.state.is_completed():
        return
    stores = await asyncio.to_thread(job_stores, settings, user_of(flow_run.tags))
    outcome = await asyncio.to_thread(
        discard_partial_results, settings, stores, job_id=job_id_of(flow_run.tags, flow_run.id)
    )
    if outcome:
        log.info("the job did not complete: %s", outcome)


async def record_end(
    client: PrefectClient, flow_run_id: uuid.UUID, code: int, *, dismissed: bool
) -> None:
    """Record the end of a job whose process ended with ``code`` (< 0: that signal):
    CANCELLED if it was ``dismissed``, else CRASHED unless the run already reached a
    final state by itself."""
    if dismissed:
        await client.set_flow_run_state(
            flow_run_id, Cancelled(message="dismissed by the user"), force=True
        )
        return
    flow_run = await client.read_flow_run(flow_run_id)
    if flow_run.state and flow_run.state.is_final():
        return
    how = (
        f"was killed by signal {signal.Signals(-code).name}"
        if code < 0
        else f"exited with code {code}"
    )
    await client.set_flow_run_state(
        flow_run_id,
        Crashed(message=f"the job process {how} before the run finished"),
        force=True,
    )


class _JobLog(logging.Handler):
    """What the worker does for one job, kept to be written to that job's Prefect log
    (and passed to the worker's own log as it happens)."""

    def __init__(self, flow_run_id: uuid.UUID) -> None:
        super().__init__(logging.INFO)
        self.flow_run_id = flow_run_id
        self.logs: list[LogCreate] = []
        # A logger of its own, outside the logging tree: its records reach only this handler.
        self.logger = logging.Logger("oapip.worker", logging.INFO)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        logger.handle(record)
        self.logs.append(
            LogCreate(
                name=record.name,
                level=record.levelno,
                message=record.getMessage(),
                timestamp=dt.datetime.fromtimestamp(record.created, dt.UTC),
                flow_run_id=self.flow_run_id,
            )
        )
