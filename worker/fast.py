"""The fast worker: a Prefect worker of our own for the ``oapip-fast`` work pool.

Per job it removes what the stock process worker pays (queue polling, a fresh Python per
run, a heartbeat-thread join: ~4-5 s a job, see the README's "The fast path"): runs are
picked up when Prefect announces them (``prefect.flow-run.Scheduled`` events; a slow poll
is only the safety net), each flow run is a process forked from a warm zygote that has already
imported Prefect, cwltool and the flow and loaded the process's CWL, and cwltool runs
in that process through its Python API. Every job is still a real Prefect flow run.

Correctness: each job process leads its own process group, so dismissing a job
(``prefect.flow-run.Cancelling``) kills it and every tool it started; a job process that
dies is reported ``Crashed`` without touching the others, and what it started is killed
with its group; job processes die with the worker; each has an address-space cap
(``OAPIP_JOB_MEMORY_LIMIT_MIB``). What a job's backend runs outside the group (a WES run,
a Kubernetes namespace, containers) is recorded in the job's work directory while it
runs; once a job process has ended abnormally (dismissed, crashed, killed) the worker
stops what is still recorded, writes what it stopped to the job's log, and only then
records the job's end (:mod:`worker.endings`).

Faults: the worker marks every run it claims (its Pending state says ``claimed by
oapip-fast <host>:<pid>``). On start, and every minute, it reconciles: a run of its pool
still PENDING or RUNNING that a worker on this host claimed, whose worker is gone (killed,
crashed) or is this one but no longer runs it, is orphaned — its job process died with
that worker. A RUNNING one ends ``Crashed`` with a message saying so, after the runs it
recorded are stopped; a PENDING one never started (no user code ran) and is scheduled
again, so no job is lost. Recording a job's end retries while the Prefect server is away
(restarted), for up to ``worker.endings.END_RETRY_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import psutil
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed, Pending, Scheduled

from core.naming import PACKAGE_BLOCK_TYPE, WORKER_ALIVE_FILE, claim_message, claimant
from core.secrets import install_log_redaction
from core.settings import Settings, get_settings
from core.tenancy import check_mode
from ogc_prefect.rest import PrefectRest, Refused
from worker.deadline import Deadlines, record_timeout
from worker.endings import record_end, retrying, stop_left_runs
from worker.fairness import FairShare
from worker.protocol import Exited, Message, Package, Ready, Run, Started, decode, encode

__all__ = ["FastWorker", "main"]

logger = logging.getLogger("oapip.worker")

POLL_INTERVAL_S = 5.0  # safety net only: runs are picked up on their Scheduled event
HEARTBEAT_S = 30.0
RECONCILE_S = 60.0  # how often orphaned runs are looked for, seconds


@dataclass
class _Job:
    flow_run_id: uuid.UUID
    pid: int | None = None
    cancelling: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)


class FastWorker:
    """Runs flow runs of one work pool in forked, warm job processes."""

    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"oapip-fast-{socket.gethostname()}-{os.getpid()}"
        self.claim = claim_message(socket.gethostname(), os.getpid())
        self.slots = settings.worker.slots
        self.jobs: dict[uuid.UUID, _Job] = {}
        # Jobs whose process has ended and whose end is being recorded (their runs stopped).
        self.ending: set[uuid.UUID] = set()
        self.by_pid: dict[int, _Job] = {}
        self.preloaded: set[tuple[str, str]] = set()
        self.wake = asyncio.Event()
        self.client: PrefectClient
        self.rest: PrefectRest
        self.fair: FairShare  # per-user running limits, fair pick-up (worker/fairness.py)
        self.deadlines: Deadlines  # job time limits (worker/deadline.py)
        self._zygote: subprocess.Popen | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._zygote_ready = asyncio.Event()
        self._writes = asyncio.Semaphore(settings.prefect.write_concurrency)

    # --- zygote ----------------------------------------------------------------------
    async def _start_zygote(self) -> asyncio.StreamReader:
        mine, theirs = socket.socketpair()
        self._zygote = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.zygote",
                str(theirs.fileno()),
                str(self.settings.worker.job_memory_limit_mib),
            ],
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=mine, limit=1 << 24)
        self.preloaded.clear()
        return reader

    async def _send(self, message: Message) -> None:
        assert self._writer is not None
        self._writer.write(encode(message))
        await self._writer.drain()

    async def _zygote_loop(self) -> None:
        while True:
            reader = await self._start_zygote()
            while line := await reader.readline():
                self._received(decode(line))
            # The zygote died: its job processes died with it.
            self._zygote_ready.clear()
            logger.error(
                "zygote exited (code %s); restarting it", self._zygote and self._zygote.wait()
            )
            for job in list(self.jobs.values()):
                await self._finished(job, -signal.SIGKILL)

    def _received(self, message: Message) -> None:
        if isinstance(message, Ready):
            self._zygote_ready.set()
        elif isinstance(message, Started):
            job = self.jobs.get(uuid.UUID(message.flow_run_id))
            if job:
                job.pid = message.pid
                self.by_pid[job.pid] = job
                job.started.set()
        elif isinstance(message, Exited):
            job = self.by_pid.pop(message.pid, None)
            logger.info(
                "job process %s exited %s after %.3f s CPU",
                message.pid,
                message.code,
                message.cpu_s,
            )
            if job:
                asyncio.create_task(self._finished(job, message.code))

    # --- picking up runs -------------------------------------------------------------
    async def _package(self, flow_run: FlowRun) -> Package | None:
        name = flow_run.parameters.get("package")
        revision = flow_run.parameters.get("revision", "")
        if not name or (name, revision) in self.preloaded:
            return None
        try:
            document = await self.client.read_block_document_by_name(name, PACKAGE_BLOCK_TYPE)
        except ObjectNotFound:
            return None  # the job process fails the run with a clear message
        self.preloaded.add((name, revision))
        return Package(name, document.data)

    async def _submit(self, flow_run: FlowRun) -> None:
        job = _Job(flow_run.id)
        self.jobs[flow_run.id] = job
        try:
            async with self._writes:
                state = await self.rest.propose_state(flow_run.id, Pending(message=self.claim))
        except Refused:
            state = None  # another worker took it, or it was cancelled
        except Exception:
            state = None
            logger.exception("could not claim flow run %s", flow_run.id)
        if state is None or not state.is_pending():
            self.jobs.pop(flow_run.id, None)
            await self.fair.release(flow_run.id)
            return
        flow_run.state = state
        package = await self._package(flow_run)
        await self._zygote_ready.wait()
        limit_s = await self.deadlines.limit_s(flow_run)
        self.deadlines.watch(flow_run, limit_s, job.started, lambda: _kill_job(job))
        await self._send(Run(flow_run.model_dump(mode="json"), package, limit_s))

    async def _scheduled_runs(self, limit: int) -> list[FlowRun]:
        """Up to ``limit`` runs of our pool that are due now.

        The client's helper has no ``limit``: with hundreds queued, every wake-up would
        read them all. The endpoint takes one.
        """
        from prefect.client.schemas.responses import WorkerFlowRunResponse

        response = await self.client.request(
            "POST",
            "/work_pools/{name}/get_scheduled_flow_runs",
            path_params={"name": self.settings.prefect.work_pool},
            json={
                "scheduled_before": dt.datetime.now(dt.UTC).isoformat(),
                "limit": limit,
            },
        )
        responses = WorkerFlowRunResponse.model_validate_list(response.json())
        return [r.flow_run for r in responses if r.flow_run.id not in self.jobs][:limit]

    async def _pickup_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_INTERVAL_S)
            self.wake.clear()
            free = self.slots - len(self.jobs)
            if free <= 0:
                continue
            try:
                runs = await self.fair.next_runs(free, self._scheduled_runs)
            except Exception:
                logger.exception("could not read scheduled flow runs")
                continue
            await asyncio.gather(*(self._submit(run) for run in runs))
            if len(runs) == free:
                self.wake.set()  # there may be more waiting: look again as slots free up

    # --- endings ---------------------------------------------------------------------
    async def _finished(self, job: _Job, code: int) -> None:
        self.jobs.pop(job.flow_run_id, None)
        timed_out = self.deadlines.forget(job.flow_run_id)
        await self.fair.release(job.flow_run_id)
        self.wake.set()
        if job.pid is not None:
            # Whatever the job process left behind in its group (a tool of a crashed
            # job, a stray background process) goes with it.
            _kill_group(job.pid)
        if not job.cancelling and code == 0:
            return
        self.ending.add(job.flow_run_id)
        try:
            # Before the end is recorded: a dismissed job reads `dismissed` only once
            # what its backend ran elsewhere (a WES run and its batch jobs) is gone.
            await stop_left_runs(self.client, self.settings, job.flow_run_id)
            if timed_out and not job.cancelling:
                await retrying(record_timeout, self.client, job.flow_run_id, timed_out)
            else:
                await retrying(
                    record_end, self.client, job.flow_run_id, code, dismissed=job.cancelling
                )
        except Exception:
            logger.exception("could not record the end of flow run %s", job.flow_run_id)
        finally:
            self.ending.discard(job.flow_run_id)

    # --- orphans -----------------------------------------------------------------------
    async def reconcile(self) -> int:
        """End or requeue the runs orphaned by a worker of this host that is gone.

        Returns how many runs were changed.
        """
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
            WorkPoolFilter,
            WorkPoolFilterName,
        )
        from prefect.client.schemas.objects import StateType

        runs = await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])
                )
            ),
            work_pool_filter=WorkPoolFilter(
                name=WorkPoolFilterName(any_=[self.settings.prefect.work_pool])
            ),
        )
        changed = 0
        for run in runs:
            if run.id in self.jobs or run.id in self.ending:
                continue
            claimant = await self._claimant(run.id)
            if claimant is None or not self._orphaned(*claimant):
                continue
            # The list is old by now (a claimant read per run): a job that ended meanwhile
            # left self.jobs with its final state recorded; forcing Crashed would undo it.
            now = await self.client.read_flow_run(run.id)
            if run.id in self.jobs or now.state_type != run.state_type:
                continue
            host, pid = claimant
            if run.state_type == StateType.PENDING:
                state = Scheduled(
                    message=f"scheduled again: worker {host}:{pid} claimed this job and "
                    "stopped before starting it"
                )
            else:
                state = Crashed(
                    message=f"the worker running this job ({host}:{pid}) stopped before the "
                    "job finished; its processes were ended with it. Run the job again."
                )
                await stop_left_runs(self.client, self.settings, run.id)
            await self.client.set_flow_run_state(run.id, state, force=True)
            logger.warning(
                "flow run %s orphaned by worker %s:%s: now %s", run.id, host, pid, state.type.value
            )
            changed += 1
        if changed:
            self.wake.set()
        return changed

    async def _claimant(self, flow_run_id: uuid.UUID) -> tuple[str, int] | None:
        """The host and PID of the fast worker that claimed a run (None: not one of ours)."""
        states = await self.client.read_flow_run_states(flow_run_id)
        return next(filter(None, (claimant(s.message) for s in reversed(states))), None)

    def _orphaned(self, host: str, pid: int) -> bool:
        """Whether a run claimed by worker ``host:pid`` has lost its job process."""
        if host != socket.gethostname():
            return False  # another machine's worker: only it can tell
        if pid == os.getpid():
            return True  # claimed by this worker, which does not run it (any more)
        try:
            return "worker.fast" not in " ".join(psutil.Process(pid).cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return True

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:
                logger.warning("could not reconcile orphaned flow runs", exc_info=True)
            await asyncio.sleep(RECONCILE_S)

    async def cancel(self, flow_run_id: uuid.UUID) -> None:
        """Dismiss a running job: kill its process group; its end does the rest.

        SIGKILL, not SIGTERM: on SIGTERM Prefect's engine in the job process records the
        run CRASHED before the worker records CANCELLED, and the job would read
        ``failed`` for a moment. When the zygote reports the process gone,
        :meth:`_finished` stops the runs its backend recorded elsewhere, then records
        CANCELLED.
        """
        job = self.jobs.get(flow_run_id)
        if job is None or job.cancelling:
            return
        job.cancelling = True
        await job.started.wait()
        assert job.pid is not None
        _kill_group(job.pid)

    # --- Prefect events --------------------------------------------------------------
    async def _events_loop(self, pool_id: uuid.UUID) -> None:
        event_filter = EventFilter(
            event=EventNameFilter(
                name=["prefect.flow-run.Scheduled", "prefect.flow-run.Cancelling"]
            ),
            any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{pool_id}"]),
        )
        while True:
            try:
                async with get_events_subscriber(
                    filter=event_filter, reconnection_attempts=10
                ) as events:
                    self.wake.set()  # catch up on what was scheduled while we connected
                    async for event in events:
                        if event.event == "prefect.flow-run.Scheduled":
                            self.wake.set()
                        else:
                            run_id = uuid.UUID(event.resource.id.rsplit(".", 1)[1])
                            asyncio.create_task(self.cancel(run_id))
            except Exception:
                logger.warning("Prefect event stream lost; reconnecting", exc_info=True)
                await asyncio.sleep(1)

    async def _cancellation_poll(self) -> None:
        """Safety net for a missed Cancelling event: check in-flight runs' states."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            ids = [i for i, j in self.jobs.items() if not j.cancelling]
            if not ids:
                continue
            with contextlib.suppress(Exception):
                runs = await self.client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        id=FlowRunFilterId(any_=ids),
                        state=FlowRunFilterState(
                            type=FlowRunFilterStateType(any_=[StateType.CANCELLING])
                        ),
                    )
                )
                for run in runs:
                    asyncio.create_task(self.cancel(run.id))

    async def _heartbeat_loop(self) -> None:
        alive = self.settings.home / WORKER_ALIVE_FILE
        while True:
            with contextlib.suppress(Exception):
                await self.client.send_worker_heartbeat(
                    self.settings.prefect.work_pool,
                    self.name,
                    heartbeat_interval_seconds=HEARTBEAT_S,
                )
            # A liveness probe reads the file's age: the loop turns, answered or not (a
            # Prefect outage is no reason to restart the worker and kill its jobs).
            with contextlib.suppress(OSError):
                alive.touch()
            await asyncio.sleep(HEARTBEAT_S)

    async def run(self) -> None:
        async with get_client() as client:
            self.client = client
            # Claims go through ogc_prefect.rest: no 2 s client back-off on SQLite.
            self.rest = PrefectRest(self.settings.prefect.api_url)
            self.fair = FairShare(client, self.rest, self._writes, self.settings)
            self.deadlines = Deadlines(client, self.settings)
            pool = await client.read_work_pool(self.settings.prefect.work_pool)
            logger.warning(
                "worker %s serving pool %r with %d slots", self.name, pool.name, self.slots
            )
            try:
                await asyncio.gather(
                    self._zygote_loop(),
                    self._pickup_loop(),
                    self._events_loop(pool.id),
                    self._cancellation_poll(),
                    self._heartbeat_loop(),
                    self._reconcile_loop(),
                    self.fair.renew_loop(),
                )
            finally:
                await self.rest.aclose()


def _kill_job(job: _Job) -> None:
    if job.pid is not None:
        _kill_group(job.pid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    settings = get_settings()
    check_mode(settings)  # multi-tenant mode needs the tool sandbox
    install_log_redaction(settings)
    worker = FastWorker(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(worker.run())


if __name__ == "__main__":
    main()
