"""Fair share in the fast worker: per-user running limits, and the next job from the user
with the fewest running.

A user's running limit is the Prefect global concurrency limit ``user:<name>``
(``core.naming.running_limit``; the gateway makes it, ``ogc_prefect.quotas``). Before
claiming a run the worker takes one slot of its user's limit with a **lease** that holds
the flow run's id (Prefect's concurrency page shows who holds what); the lease is
released when the job ends, renewed while it runs, and expires ``LEASE_S`` after its
worker died, so a crashed job never keeps its user's slot. No count is kept here: usage
and limits are read from Prefect at every pick-up, so an operator's change to a user's
limit counts at once.

Pick-up order (:func:`pick`): among the runs due, repeatedly the oldest run of the user
with the fewest jobs running (counting those just picked), skipping users at their limit.
The due runs are read from the oldest; when that window is full, the oldest runs of the
users with room that it does not show are read as well, so one user's long queue never
hides another user's job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectAlreadyExists

from core.naming import running_limit
from core.settings import Settings
from ogc_prefect.rest import PrefectRest

__all__ = ["LEASE_S", "FairShare", "Usage", "pick", "run_user"]

logger = logging.getLogger("oapip.worker")

LEASE_S = 60.0  # a slot's lease, seconds (Prefect's shortest): freed this long after a crash
RENEW_S = 20.0  # how often held leases are renewed, seconds
WINDOW = 50  # due runs read at once, oldest first
_LIMIT_PREFIX = running_limit("")
_LIMITS_PAGE = 200


@dataclass(frozen=True)
class Usage:
    """One user's running limit as Prefect has it: ``limit`` None when there is none
    (no limit made for the user, or an operator switched it off)."""

    running: int
    limit: int | None


def run_user(run: FlowRun) -> str | None:
    """The user a flow run belongs to (its ``user:<name>`` tag), or None."""
    return next((t[len(_LIMIT_PREFIX) :] for t in run.tags if t.startswith(_LIMIT_PREFIX)), None)


def pick(due: Iterable[FlowRun], usage: dict[str, Usage], free: int) -> list[FlowRun]:
    """Up to ``free`` of the ``due`` runs (oldest first) in the order they should start:
    each time, the oldest run of the user with the fewest running (ties: the user whose
    next run is oldest); users at their limit are passed over."""
    queues: dict[str | None, deque[FlowRun]] = {}
    for run in sorted(due, key=_due_time):
        queues.setdefault(run_user(run), deque()).append(run)
    running = {u: usage[u].running if u in usage else 0 for u in queues}
    chosen: list[FlowRun] = []
    while len(chosen) < free:
        ready = [
            u
            for u, q in queues.items()
            if q and (u not in usage or usage[u].limit is None or running[u] < usage[u].limit)
        ]
        if not ready:
            break
        user = min(ready, key=lambda u: (running[u], _due_time(queues[u][0])))
        chosen.append(queues[user].popleft())
        running[user] += 1
    return chosen


def _due_time(run: FlowRun) -> dt.datetime:
    return run.expected_start_time or run.created or dt.datetime.min.replace(tzinfo=dt.UTC)


class FairShare:
    """The worker's side of per-user running limits: which runs to start, and their
    slots' leases."""

    def __init__(
        self,
        client: PrefectClient,
        rest: PrefectRest,
        writes: asyncio.Semaphore,
        settings: Settings,
    ) -> None:
        self.client = client
        self.rest = rest  # slots are taken and given back without the client's 2 s waits
        self.writes = writes  # the worker's queue of writes (SQLite takes one at a time)
        self.settings = settings
        self.enabled = settings.quotas.user_max_running > 0
        self.leases: dict[uuid.UUID, uuid.UUID] = {}  # flow-run id -> its slot's lease id

    async def next_runs(
        self, free: int, due: Callable[[int], Awaitable[list[FlowRun]]]
    ) -> list[FlowRun]:
        """Up to ``free`` runs to start now, each holding a slot of its user's limit.

        ``due(n)`` reads the oldest ``n`` runs due (the worker's pick-up query).
        """
        if not self.enabled:
            return await due(free)
        window = await due(WINDOW)
        usage = await self.usage()
        if len(window) >= WINDOW:
            window += await self._hidden_runs(window, usage, free)
        for user in {run_user(r) for r in window} - usage.keys() - {None}:
            usage[user] = await self._ensure_limit(user)
        started = []
        for run in pick(window, usage, free):
            if await self._acquire(run):
                started.append(run)
        return started

    async def usage(self) -> dict[str, Usage]:
        """Every user's running limit and how many of its slots are taken, from Prefect."""
        usage: dict[str, Usage] = {}
        offset = 0
        while True:
            limits = await self.client.read_global_concurrency_limits(
                limit=_LIMITS_PAGE, offset=offset
            )
            for limit in limits:
                if limit.name.startswith(_LIMIT_PREFIX):
                    usage[limit.name[len(_LIMIT_PREFIX) :]] = Usage(
                        limit.active_slots, limit.limit if limit.active else None
                    )
            if len(limits) < _LIMITS_PAGE:
                return usage
            offset += _LIMITS_PAGE

    async def _hidden_runs(
        self, window: list[FlowRun], usage: dict[str, Usage], free: int
    ) -> list[FlowRun]:
        """The oldest due runs of the users with room whom the full ``window`` does not
        show, and who run fewer jobs than the users it does show."""
        shown = {run_user(r) for r in window}
        fewest = min((usage[u].running if u in usage else 0 for u in shown), default=0)
        hidden = [
            u
            for u, use in usage.items()
            if u not in shown
            and use.running < fewest
            and (use.limit is None or use.running < use.limit)
        ]
        if not hidden:
            return []
        return await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(any_=[running_limit(u) for u in hidden]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=dt.datetime.now(dt.UTC)),
            ),
            work_pool_filter=WorkPoolFilter(
                name=WorkPoolFilterName(any_=[self.settings.prefect.work_pool])
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=max(free, 1) * len(hidden),
        )

    async def _ensure_limit(self, user: str) -> Usage:
        """Make ``user``'s running limit (a job of a schedule may come before any execute
        request did); never changes an existing one."""
        limit = self.settings.quotas.user_max_running
        try:
            await self.client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=running_limit(user), limit=limit)
            )
        except ObjectAlreadyExists:
            existing = await self.client.read_global_concurrency_limit_by_name(running_limit(user))
            return Usage(existing.active_slots, existing.limit if existing.active else None)
        return Usage(0, limit)

    async def _acquire(self, run: FlowRun) -> bool:
        """Take a slot of the run's user's limit, leased to the run; False when it is full
        (another worker took the last one, or an operator lowered the limit)."""
        user = run_user(run)
        if user is None:
            return True
        holder = ConcurrencyLeaseHolder(type="flow_run", id=run.id)
        try:
            async with self.writes:
                response = await self.rest.post(
                    "v2/concurrency_limits/increment-with-lease",
                    {
                        "names": [running_limit(user)],
                        "slots": 1,
                        "mode": "concurrency",
                        "lease_duration": LEASE_S,
                        "holder": holder.model_dump(mode="json"),
                    },
                )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 423:  # Locked: no slot free
                return False
            raise
        self.leases[run.id] = uuid.UUID(response.json()["lease_id"])
        return True

    async def release(self, flow_run_id: uuid.UUID) -> None:
        """Give back the slot a run held (its job ended, or its claim was refused)."""
        lease_id = self.leases.pop(flow_run_id, None)
        if lease_id is None:
            return
        try:
            async with self.writes:
                await self.rest.post(
                    "v2/concurrency_limits/decrement-with-lease", {"lease_id": str(lease_id)}
                )
        except Exception:
            # Not lost: the lease expires within LEASE_S and Prefect frees the slot then.
            logger.warning("could not release the slot of flow run %s", flow_run_id, exc_info=True)

    async def renew_loop(self) -> None:
        """Keep the leases of running jobs alive."""
        while True:
            await asyncio.sleep(RENEW_S)
            for run_id, lease_id in list(self.leases.items()):
                try:
                    await self.client.renew_concurrency_lease(lease_id, LEASE_S)
                except Exception:
                    logger.warning("could not renew the slot of flow run %s", run_id, exc_info=True)
