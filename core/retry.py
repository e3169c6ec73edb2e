"""The one way the engine repeats a call that failed for a reason that may pass.

A :class:`Backoff` says how long to wait between attempts (a first wait, multiplied each
time up to a ceiling) and when to give up (after a number of attempts, or once the next
wait would pass a deadline). :func:`retry` and :func:`retry_async` run a call under it,
repeating only what ``retryable`` says is transient; the last failure is raised as it is.

Used for Prefect API calls (a locked SQLite answers 503, a restarting server refuses
connections), downloads and uploads, WES requests and callback deliveries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Backoff", "retry", "retry_async"]

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``first_s``, then times ``factor``, at most ``max_s``.

    Attributes:
        first_s: the first wait, seconds.
        factor: what each wait is multiplied by for the next.
        max_s: the longest wait, seconds.
        attempts: give up after this many attempts in all (None: no count).
        deadline_s: give up when the next wait would end more than this many seconds
            after the first attempt started (None: no deadline).
    """

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    attempts: int | None = 4
    deadline_s: float | None = None

    def waits(self) -> Iterator[float]:
        """The waits before the second, third, ... attempt; ends when it is time to give up.

        The deadline counts from this call (made before the first attempt), not from the
        first wait asked of the iterator.
        """
        return self._waits(time.monotonic())

    def _waits(self, start: float) -> Iterator[float]:
        wait = self.first_s
        attempt = 1
        while self.attempts is None or attempt < self.attempts:
            if self.deadline_s is not None and time.monotonic() + wait - start > self.deadline_s:
                return
            yield wait
            attempt += 1
            wait = min(wait * self.factor, self.max_s)


def retry(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    retryable: Callable[[Exception], bool],
    on_retry: Callable[[Exception, float], None] | None = None,
) -> T:
    """``call()``, repeated after each wait of ``backoff`` while it raises a retryable error.

    ``on_retry(error, wait_s)`` is told of each failure that will be retried.
    """
    waits = backoff.waits()
    while True:
        try:
            return call()
        except Exception as exc:
            time.sleep(_wait_or_raise(exc, waits, retryable, on_retry))


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    retryable: Callable[[Exception], bool],
    on_retry: Callable[[Exception, float], None] | None = None,
) -> T:
    """The asynchronous :func:`retry`: ``await call()`` under ``backoff``."""
    waits = backoff.waits()
    while True:
        try:
            return await call()
        except Exception as exc:
            await asyncio.sleep(_wait_or_raise(exc, waits, retryable, on_retry))


def _wait_or_raise(
    exc: Exception,
    waits: Iterator[float],
    retryable: Callable[[Exception], bool],
    on_retry: Callable[[Exception, float], None] | None,
) -> float:
    """How long to wait before the next attempt after ``exc``; re-raises ``exc`` when it
    is not retryable or the waits are used up. Called inside the ``except`` block."""
    wait = next(waits, None) if retryable(exc) else None
    if wait is None:
        raise exc
    if on_retry is not None:
        on_retry(exc, wait)
    return wait
