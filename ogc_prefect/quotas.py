"""Per-user limits the gateway enforces before anything is created in Prefect.

Every number is read from Prefect, never counted by the engine:

- accepted jobs: the user's flow runs SCHEDULED or PENDING and due (a schedule's future
  runs are not jobs yet), counted by Prefect (``OAPIP_USER_MAX_QUEUED``; one more is 429
  with ``Retry-After``);
- running jobs: the Prefect global concurrency limit ``user:<name>``
  (``core.naming.running_limit``), made with ``OAPIP_USER_MAX_RUNNING`` the first time
  the user submits a job; the fast worker takes a slot of it for every job it starts
  (``worker/fairness.py``). An operator sees its usage on Prefect's concurrency page and
  may change one user's limit there without a restart; it is never overwritten;
- deployed processes and schedules: the user's deployments and their schedules
  (``OAPIP_USER_MAX_PROCESSES``, ``OAPIP_USER_MAX_SCHEDULES``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterTags,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from core.exceptions import LimitReached, ServiceUnavailable, TooManyJobs
from core.naming import BUILTIN_PROCESS_IDS, TAG, process_of, running_limit, user_tag
from ogc_prefect.client import PrefectApi

__all__ = ["RETRY_AFTER_S", "Quotas", "waiting_text"]

RETRY_AFTER_S = 30
# How long a submit through the outbox waits for Prefect to count a user's jobs; past it
# (Prefect down or swamped) the job is accepted unchecked: the outbox exists so that
# submits do not depend on Prefect.
OUTBOX_CHECK_S = 5.0

logger = logging.getLogger(__name__)
"""``Retry-After`` of a refused job, seconds: Prefect keeps no per-user measure of how long
a job holds its slot, and a client polling every 30 s costs the gateway nothing."""


def waiting_text(running: int, limit: int) -> str:
    """The message of an accepted job whose user has ``running`` jobs at their ``limit``."""
    jobs = "job is" if running == 1 else "jobs are"
    return (
        f"waiting: {running} of your {jobs} running, your limit is {limit} at once "
        "(OAPIP_USER_MAX_RUNNING); this job starts when one of them ends"
    )


class Quotas:
    """The checks made before a job, a process or a schedule is created for a user."""

    def __init__(self, api: PrefectApi) -> None:
        self.api = api
        self.settings = api.settings.quotas

    async def check_execute(self, user: str) -> None:
        """Refuse a job past ``user``'s queue limit (``TooManyJobs``), and make sure
        their running limit exists in Prefect before the worker meets their first job.
        With the outbox, a Prefect that does not answer within ``OUTBOX_CHECK_S`` lets
        the job through unchecked (the worker makes the running limit)."""
        if self.api.outbox is None:
            await self._check_execute(user)
            return
        try:
            await asyncio.wait_for(self._check_execute(user), OUTBOX_CHECK_S)
        except (TimeoutError, ServiceUnavailable):
            logger.warning("Prefect did not answer: %s's job accepted without its limits", user)

    async def _check_execute(self, user: str) -> None:
        await self._ensure_running_limit(user)
        most = self.settings.user_max_queued
        if not most:
            return
        now = dt.datetime.now(dt.UTC)
        accepted = await self.api.call(
            self.api.client.count_flow_runs,
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[TAG, user_tag(user)]),
                state=FlowRunFilterState(
                    # PENDING: a worker holds it (and its running slot); not queued.
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                ),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=now),
            ),
        )
        if self.api.outbox is not None:  # and those not yet handed to Prefect
            accepted += await self._outbox_only(user)
        if accepted >= most:
            raise TooManyJobs(
                f"you have {accepted} accepted jobs waiting to run, the most one user may "
                f"have (OAPIP_USER_MAX_QUEUED={most}); submit again when some have "
                "started, or dismiss some",
                retry_after_s=RETRY_AFTER_S,
            )

    async def _outbox_only(self, user: str) -> int:
        """How many of ``user``'s jobs wait in the outbox with no flow run yet (a row
        stays a moment after Prefect created its run: not counted twice)."""
        rows = await self.api.outbox.list(user)
        if not rows:
            return 0
        created = await self.api.call(
            self.api.client.count_flow_runs,
            flow_run_filter=FlowRunFilter(
                idempotency_key=FlowRunFilterIdempotencyKey(any_=[r.job_id for r in rows])
            ),
        )
        return max(len(rows) - created, 0)

    async def waiting_message(self, user: str) -> str | None:
        """Why ``user``'s accepted jobs wait, when it is their own running limit."""
        limit = await self._read_running_limit(user)
        if limit is None or not limit.active or limit.active_slots < limit.limit:
            return None
        return waiting_text(limit.active_slots, limit.limit)

    async def check_deploy(self, user: str) -> None:
        """Refuse a new process past ``OAPIP_USER_MAX_PROCESSES`` (``LimitReached``)."""
        most = self.settings.user_max_processes
        if not most:
            return
        # The built-in processes (or a user's own of their id, in their place) are free.
        own = [
            d
            for d in await self._deployments(user)
            if process_of(d.tags or []) not in BUILTIN_PROCESS_IDS
        ]
        if len(own) >= most:
            raise LimitReached(
                f"you have {most} deployed processes, the most one user may have "
                f"(OAPIP_USER_MAX_PROCESSES={most}); undeploy one first"
            )

    async def check_schedule(self, user: str) -> None:
        """Refuse a new schedule past ``OAPIP_USER_MAX_SCHEDULES`` (``LimitReached``)."""
        most = self.settings.user_max_schedules
        if not most:
            return
        count = sum(len(d.schedules or []) for d in await self._deployments(user))
        if count >= most:
            raise LimitReached(
                f"you have {count} reprocessing schedules, the most one user may have "
                f"(OAPIP_USER_MAX_SCHEDULES={most}); delete one first"
            )

    async def _deployments(self, user: str) -> list:
        return await self.api.call(
            self.api.client.read_deployments,
            deployment_filter=DeploymentFilter(
                tags=DeploymentFilterTags(all_=[TAG, user_tag(user)])
            ),
        )

    async def _read_running_limit(self, user: str) -> GlobalConcurrencyLimitResponse | None:
        if not self.settings.user_max_running:
            return None
        try:
            return await self.api.call(
                self.api.client.read_global_concurrency_limit_by_name, running_limit(user)
            )
        except ObjectNotFound:
            return None

    async def _ensure_running_limit(self, user: str) -> None:
        """Create ``user``'s running limit unless it exists (an operator's value stays)."""
        if not self.settings.user_max_running or user in self.api.running_limits:
            return
        if await self._read_running_limit(user) is None:
            create = GlobalConcurrencyLimitCreate(
                name=running_limit(user), limit=self.settings.user_max_running
            )
            try:
                async with self.api.writes:
                    await self.api.call(self.api.client.create_global_concurrency_limit, create)
            except ObjectAlreadyExists:
                pass  # another gateway made it first
        self.api.running_limits.add(user)
