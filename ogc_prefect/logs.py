"""Logs: a job's logs are the Prefect logs of its flow run and of its task runs.

Each line says where it came from: the phase whose task logged it (``stage-in``,
``execute``, ``stage-out``), ``flow``, or ``gateway`` (the line the gateway adds when it
creates the job). Users get the lines as :class:`core.secrets.Redactor` leaves them: the
tracebacks Prefect appends to a failed run's lines, and the engine's paths, stay in the
Prefect UI for operators.
"""

from __future__ import annotations

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import LogSort

from ogc_prefect.client import PREFECT_PAGE, PrefectApi
from ogc_prefect.jobs import Jobs
from ogc_prefect.mapping import LogRecord, log_records

__all__ = ["Logs"]


class Logs:
    """Read a user's job logs, a page at a time."""

    def __init__(self, api: PrefectApi, jobs: Jobs) -> None:
        self.api = api
        self.jobs = jobs

    async def job_logs(
        self, user: str, job_id: str, *, limit: int, offset: int
    ) -> tuple[list[LogRecord], bool]:
        """A page of ``limit`` log lines from line ``offset``, oldest first, and whether
        more follow (none yet for a job still in the outbox). ``NoSuchJob`` for a job that
        is not ``user``'s."""
        if self.api.outbox and await self.api.outbox.get(user, job_id):
            return [], False
        flow_run = await self.jobs.flow_run(user, job_id)
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
        logs = await self.api.call(
            self.api.client.read_logs,
            log_filter=log_filter,
            limit=min(limit, PREFECT_PAGE),
            offset=offset,
            sort=LogSort.TIMESTAMP_ASC,
        )
        # Prefect answers at most PREFECT_PAGE lines a call: ask for one more separately.
        more = len(logs) == limit and bool(
            await self.api.call(
                self.api.client.read_logs, log_filter=log_filter, limit=1, offset=offset + limit
            )
        )
        task_runs = await self.api.call(
            self.api.client.read_task_runs,
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
        )
        return log_records(logs, task_runs, self.api.redact), more
