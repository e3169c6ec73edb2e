"""Per-user limits the gateway enforces before anything is created in Prefect.

Every number is read from Prefect, never counted by the engine:

- accepted jobs: the user's flow runs SCHEDULED and due (a schedule's future runs are not
  jobs yet) counted by Prefect, plus their jobs still in the outbox
  (``OAPIP_USER_MAX_QUEUED``; one more is 429 with ``Retry-After``). A submit does not
  wait for that count: it uses the last one (read again behind it once it is
  ``QUEUE_COUNT_TTL_S`` old) plus the jobs this gateway accepted since that read began;
  only a user's first submit waits for it (:class:`QueueCount`);
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
import time
from dataclasses import dataclass

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

__all__ = ["QUEUE_COUNT_TTL_S", "RETRY_AFTER_S", "QueueCount", "Quotas", "waiting_text"]

RETRY_AFTER_S = 30
# How long a submit through the outbox waits for Prefect to count a user's jobs; past it
# (Prefect down or swamped) the job is accepted unchecked: the outbox exists so that
# submits do not depend on Prefect.
OUTBOX_CHECK_S = 5.0

# How old a user's count of accepted jobs may be before a submit has it read again
# (behind the submit, which uses the old one), seconds.
QUEUE_COUNT_TTL_S = 2.0
# A submit is refused only on a count at most this old, seconds (else it is read again
# first): a user at their limit costs Prefect a few counts a second at most.
REFUSE_ON_S = 0.25

logger = logging.getLogger(__name__)


@dataclass
class QueueCount:
    """A user's accepted jobs as Prefect and the outbox last counted them, and how many
    this gateway accepted since that count began (those may or may not be in it: the
    sum errs on the side of the limit, by what was submitted during one read).

    Other gateway replicas' jobs appear in the next count, ``QUEUE_COUNT_TTL_S`` later.
    """

    counted: int = 0
    read_at: float = float("-inf")  # monotonic time the count began
    since: int = 0
    reading: asyncio.Task[None] | None = None

    @property
    def accepted(self) -> int:
        return self.counted + self.since

    def age(self) -> float:
        """Seconds since the count began."""
        return time.monotonic() - self.read_at

    def stale(self) -> bool:
        return self.age() > QUEUE_COUNT_TTL_S


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
        count = self.api.queued.setdefault(user, QueueCount())
        if count.read_at == float("-inf"):  # never counted: this submit waits for it
            await self._read_queue(user, count)
        elif count.stale() and count.reading is None:
            count.reading = asyncio.create_task(self._read_queue_behind(user, count))
        if count.accepted >= most and count.age() > REFUSE_ON_S:
            # Refused only on a fresh count: the old one may hold jobs started since.
            if count.reading is not None:  # shielded: other submits wait for it too
                await asyncio.shield(count.reading)
            else:
                await self._read_queue(user, count)
        if count.accepted >= most:
            raise TooManyJobs(
                f"you have {count.accepted} accepted jobs waiting to run, the most one user "
                f"may have (OAPIP_USER_MAX_QUEUED={most}); submit again when some have "
                "started, or dismiss some",
                retry_after_s=RETRY_AFTER_S,
            )
        count.since += 1  # this job, accepted once the checks pass

    async def _read_queue_behind(self, user: str, count: QueueCount) -> None:
        try:
            await self._read_queue(user, count)
        except Exception as exc:  # the old count stays; the next submit tries again
            logger.warning("could not count %s's accepted jobs: %s", user, exc)
        finally:
            count.reading = None

    async def _read_queue(self, user: str, count: QueueCount) -> None:
        """Count ``user``'s accepted jobs in Prefect and the outbox into ``count``."""
        began, since = time.monotonic(), count.since
        accepted = await self._count_accepted(user)
        count.counted, count.read_at = accepted, began
        count.since -= since  # those accepted before the read began are in it

    async def _count_accepted(self, user: str) -> int:
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
        return accepted

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
