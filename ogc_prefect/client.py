"""The gateway's one connection to Prefect, shared by every request.

:class:`PrefectApi` wraps the asynchronous ``PrefectClient`` the app opens in its
lifespan, and adds what every resource needs from it:

* :meth:`PrefectApi.call` repeats a call that failed for a reason that passes (a locked
  SQLite answers 503, a restarting server refuses connections) and, when the attempts
  run out, raises ``ServiceUnavailable`` (503 to the OGC client);
* :attr:`PrefectApi.writes` queues writes at the concurrency the database handles;
* :meth:`PrefectApi.log_later` adds gateway lines to a job's logs in batches;
* the caches that outlive a request: the flow's id, deployed processes and packages.

The resource modules (``processes``, ``jobs``, ``schedules``, ``logs``) are built on it,
per request, by the gateway's dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import LogCreate
from prefect.exceptions import PrefectHTTPStatusError

from blocks.package import ApplicationPackage
from core.exceptions import ServiceUnavailable
from core.naming import FLOW_NAME
from core.retry import Backoff, retry_async
from core.secrets import Redactor
from core.settings import Settings
from ogc_prefect.mapping import GATEWAY_LOGGER, ProcessRecord
from ogc_prefect.rest import PrefectRest

__all__ = ["PREFECT_PAGE", "UNAVAILABLE", "PrefectApi"]

T = TypeVar("T")

PREFECT_PAGE = 200
"""Most flow runs (or log lines) the Prefect API returns per call (its default limit)."""
UNAVAILABLE = "the Prefect server did not answer in time; try again shortly"
"""The message of the 503 a client gets when Prefect stays unavailable."""

_LOG_BATCH_S = 0.2  # how long gateway log lines wait to share one request with others
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def _transient(exc: Exception) -> bool:
    """Whether a failed Prefect call may go through when repeated."""
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code in _RETRY_STATUS
    return isinstance(exc, httpx.TransportError)


def _backoff(attempts: int) -> Backoff:
    """Waits of 50 ms doubling to 2 s, ``attempts`` attempts in all (8: about 6 s in all,
    long enough for a Prefect server to restart)."""
    return Backoff(first_s=0.05, factor=2.0, max_s=2.0, attempts=attempts)


class PrefectApi:
    """The Prefect API as the OGC resources use it (see the module docstring).

    Attributes:
        client: the shared asynchronous Prefect client (opened by the app's lifespan).
        settings: the engine's settings.
        redact: applied to every message read back from Prefect before users see it
            (secrets masked, engine paths elided, tracebacks dropped).
        writes: held around each write; Prefect on SQLite degrades badly under concurrent
            writers (each waits for the others' locks and times out), so writes queue here
            at ``settings.prefect.write_concurrency``.
        rest: creates flow runs without the Prefect client's 2 s retry waits
            (:mod:`ogc_prefect.rest` says why).
        processes: deployed processes by (user, process id), with the monotonic time they
            were read (a cached answer saves a read on every execute request).
        running_limits: users whose Prefect concurrency limit exists (``ogc_prefect.quotas``).
        queued: each user's last count of accepted jobs (``ogc_prefect.quotas.QueueCount``).
        packages: package block documents by (block name, revision): a revision never
            changes.
        outbox: the job outbox (:mod:`ogc_prefect.outbox`) the app's lifespan opens; None:
            jobs are created in Prefect during the request, as before.
    """

    def __init__(self, client: PrefectClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.redact = Redactor.from_settings(settings)
        self.writes = asyncio.Semaphore(settings.prefect.write_concurrency)
        self.rest = PrefectRest(settings.prefect.api_url)
        self.processes: dict[tuple[str, str], tuple[float, ProcessRecord]] = {}
        self.running_limits: set[str] = set()  # users whose running limit exists in Prefect
        self.queued: dict[str, Any] = {}  # user -> ogc_prefect.quotas.QueueCount
        self.packages: dict[tuple[str, str], ApplicationPackage] = {}
        self._flow_id: uuid.UUID | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._log_lines: list[LogCreate] = []
        self._refreshing: set[Any] = set()
        self.outbox: Any = None  # the job outbox (ogc_prefect.outbox.Outbox) once opened

    async def close(self) -> None:
        """Wait for the log lines still to send, then close the REST client."""
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.rest.aclose()

    async def call(
        self, func: Callable[..., Awaitable[T]], *args: Any, attempts: int = 8, **kwargs: Any
    ) -> T:
        """``await func(*args, **kwargs)``, repeated on transient failures (see
        :func:`_backoff`); ``ServiceUnavailable`` when they do not pass in time."""
        try:
            return await retry_async(
                lambda: func(*args, **kwargs), backoff=_backoff(attempts), retryable=_transient
            )
        except Exception as exc:
            if _transient(exc):
                raise ServiceUnavailable(UNAVAILABLE) from exc
            raise

    async def flow_id(self) -> uuid.UUID:
        """Id of the flow every process deploys (created on first use)."""
        if self._flow_id is None:
            self._flow_id = await self.call(self.client.create_flow_from_name, FLOW_NAME)
        return self._flow_id

    def log_later(self, flow_run_id: uuid.UUID, message: str) -> None:
        """Add a gateway line to a job's Prefect logs without delaying the response.

        Lines are sent in batches (one request for a burst of jobs), at most 0.2 s after
        they were written.
        """
        self._log_lines.append(
            LogCreate(
                name=GATEWAY_LOGGER,
                level=20,
                message=message,
                timestamp=dt.datetime.now(dt.UTC),
                flow_run_id=flow_run_id,
            )
        )
        if len(self._log_lines) == 1:
            self._in_background(self._send_logs())

    async def _send_logs(self) -> None:
        await asyncio.sleep(_LOG_BATCH_S)
        lines, self._log_lines = self._log_lines, []
        with contextlib.suppress(Exception):  # a lost gateway line must not fail a job
            await self.call(self.client.create_logs, lines, attempts=3)

    def refresh_once(self, key: Any, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` behind the request, unless one for ``key`` still runs."""
        if key in self._refreshing:
            coroutine.close()
            return
        self._refreshing.add(key)

        async def run() -> None:
            try:
                with contextlib.suppress(Exception):
                    await coroutine
            finally:
                self._refreshing.discard(key)

        self._in_background(run())

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
