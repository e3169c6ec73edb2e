"""Job time limits in the fast worker: a job past its limit is stopped and ends ``failed``.

A job's limit is ``OAPIP_MAX_JOB_SECONDS``, lowered by its package's CWL ``ToolTimeLimit``
(:func:`cwlpkg.limits.job_time_limit_s`), counted from the moment its job process
started. The limit is carried by Prefect: it is the flow run's timeout in the job process
(``worker/zygote.py``), and Prefect ends the run FAILED ("Flow run exceeded timeout of N
second(s)"); the job process then exits, and the worker's ending of an abnormal job kills
its process group (its tools) and stops what the backend ran elsewhere (a WES run is
cancelled, its Slurm jobs go with it). The worker is the backstop: a job still running
``GRACE_S`` past its limit (its process blocked in C code) has its group killed the way
a dismissed job's is, and is recorded FAILED with a message naming the limit
(:func:`record_timeout`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.states import Failed

from core.naming import PACKAGE_BLOCK_TYPE
from core.ogc import timeout_message
from core.settings import Settings
from cwlpkg.limits import job_time_limit_s

__all__ = ["GRACE_S", "Deadlines", "record_timeout"]

GRACE_S = 15.0
"""How long past its limit the worker lets the job's own Prefect timeout act first,
seconds; a job process blocked in C code, or one that ignored it, is then killed."""


class Deadlines:
    """Each job's time limit, and the timers that stop the jobs that pass it."""

    def __init__(self, client: PrefectClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._limits: dict[tuple[str, str], int | None] = {}  # by (package, revision)
        self.timers: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.timed_out: dict[uuid.UUID, int] = {}  # run id -> the limit it passed, s

    async def limit_s(self, flow_run: FlowRun) -> int | None:
        """The run's time limit, seconds (None: none); a package's is read once per
        revision."""
        site = self.settings.quotas.max_job_seconds
        name = flow_run.parameters.get("package")
        if not name:
            return site or None
        key = (name, flow_run.parameters.get("revision", ""))
        if key not in self._limits:
            try:
                block = await self.client.read_block_document_by_name(name, PACKAGE_BLOCK_TYPE)
            except ObjectNotFound:
                return site or None
            self._limits[key] = job_time_limit_s(block.data.get("workflow") or {}, site)
        return self._limits[key]

    def watch(
        self,
        flow_run: FlowRun,
        seconds: int | None,
        started: asyncio.Event,
        stop: Callable[[], None],
    ) -> None:
        """The backstop: call ``stop`` (which kills the job's group) when the run has
        been running ``seconds`` plus ``GRACE_S`` since ``started`` was set."""
        if seconds is not None:
            timer = self._timer(flow_run.id, seconds, started, stop)
            self.timers[flow_run.id] = asyncio.create_task(timer)

    async def _timer(
        self, run_id: uuid.UUID, seconds: int, started: asyncio.Event, stop: Callable[[], None]
    ) -> None:
        await started.wait()
        await asyncio.sleep(seconds + GRACE_S)
        self.timed_out[run_id] = seconds
        stop()

    def forget(self, flow_run_id: uuid.UUID) -> int | None:
        """The job ended: drop its timer; the limit it passed, if it did."""
        timer = self.timers.pop(flow_run_id, None)
        if timer is not None:
            timer.cancel()
        return self.timed_out.pop(flow_run_id, None)


async def record_timeout(client: PrefectClient, flow_run_id: uuid.UUID, seconds: int) -> None:
    """Record the end of a job stopped at its time limit: FAILED, naming the limit,
    unless the run reached a final state by itself first."""
    flow_run = await client.read_flow_run(flow_run_id)
    if flow_run.state and flow_run.state.is_final():
        return
    await client.set_flow_run_state(
        flow_run_id, Failed(message=timeout_message(seconds)), force=True
    )
