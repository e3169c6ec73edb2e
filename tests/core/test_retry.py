"""core.retry: attempts, waits and deadlines, on plain functions."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.retry import Backoff, retry, retry_async


class _Flaky:
    """Fails ``failures`` times with ``error``, then answers ``"ok"``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_waits_double_up_to_the_ceiling_and_stop_at_the_attempts():
    backoff = Backoff(first_s=1, factor=2, max_s=5, attempts=6)
    assert list(backoff.waits()) == [1, 2, 4, 5, 5]


def test_the_deadline_counts_from_before_the_first_attempt():
    waits = Backoff(first_s=0.01, max_s=0.01, attempts=None, deadline_s=0.05).waits()
    time.sleep(0.06)  # the first attempt took longer than the whole deadline
    assert next(waits, None) is None


def test_retry_repeats_what_is_retryable_and_reports_each_wait():
    flaky = _Flaky(2, ConnectionError("reset"))
    seen: list[tuple[str, float]] = []
    result = retry(
        flaky,
        backoff=Backoff(first_s=0.001, attempts=3),
        retryable=lambda exc: isinstance(exc, ConnectionError),
        on_retry=lambda exc, wait: seen.append((str(exc), wait)),
    )
    assert result == "ok" and flaky.calls == 3
    assert seen == [("reset", 0.001), ("reset", 0.002)]


def test_retry_raises_the_last_failure_when_the_attempts_run_out():
    flaky = _Flaky(5, ConnectionError("reset"))
    with pytest.raises(ConnectionError):
        retry(flaky, backoff=Backoff(first_s=0.001, attempts=3), retryable=lambda exc: True)
    assert flaky.calls == 3


def test_what_is_not_retryable_is_raised_at_once():
    flaky = _Flaky(1, ValueError("bad"))
    with pytest.raises(ValueError):
        retry(
            flaky,
            backoff=Backoff(first_s=0.001, attempts=3),
            retryable=lambda exc: isinstance(exc, ConnectionError),
        )
    assert flaky.calls == 1


def test_retry_async():
    flaky = _Flaky(1, ConnectionError("reset"))

    async def call() -> str:
        return flaky()

    result = asyncio.run(
        retry_async(call, backoff=Backoff(first_s=0.001), retryable=lambda exc: True)
    )
    assert result == "ok" and flaky.calls == 2
