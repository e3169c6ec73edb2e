"""Callbacks to an execute request's ``subscriber`` (OGC API - Processes Part 1 *callback*).

``inProgressUri`` gets the job status when the job starts running, ``successUri`` the
results document when it succeeds, ``failedUri`` the job status when it fails. Delivery
is a JSON ``POST`` retried with doubling waits (``OAPIP_CALLBACK_ATTEMPTS``,
``OAPIP_CALLBACK_TIMEOUT_S``); it runs beside the job (in-progress) or after the job's
final state is recorded (success, failure), so a slow or absent receiver never delays or
fails the job. Every failed attempt is a warning in the job's logs. Deliveries go
through the engine's outbound guard (``core.http``): a URI the guard refuses (the
gateway refused it at submit; this is the second line, and covers names that resolve
elsewhere by the time the job runs) is not tried again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from typing import Any

import httpx

from core import http
from core.ogc import status_info
from core.retry import Backoff, retry
from core.settings import Settings

__all__ = ["deliver", "status_document", "Notifier"]

FIRST_RETRY_WAIT_S = 1.0  # the first wait between attempts, seconds; doubled each time


class _NotDelivered(Exception):
    """One delivery attempt failed; the message says how (HTTP status or error)."""


def deliver(
    uri: str,
    document: dict[str, Any],
    logger: logging.Logger | logging.LoggerAdapter,
    settings: Settings,
    what: str,
) -> bool:
    """POST ``document`` to ``uri`` until a 2xx answer or the attempts run out.

    ``settings.callbacks.attempts`` attempts, 1 s apart, then 2 s, 4 s...; each failed
    attempt is a warning, the last an error. Returns whether it was delivered; never raises.
    """
    attempts = settings.callbacks.attempts
    tried = 0
    guard = http.Guard.from_settings(settings)

    def post() -> None:
        nonlocal tried
        tried += 1
        guard.host_and_port(uri)
        transport = http.GuardedTransport(guard)
        try:
            with httpx.Client(transport=transport, timeout=settings.callbacks.timeout_s) as client:
                response = client.post(uri, json=document)
        except (httpx.HTTPError, httpx.InvalidURL, http.UnknownHost) as exc:
            raise _NotDelivered(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise _NotDelivered(f"HTTP {response.status_code}")

    def warn(problem: Exception, wait_s: float) -> None:
        logger.warning(
            "%s callback to %s failed (%s); attempt %d of %d, retrying in %.0f s",
            what,
            uri,
            problem,
            tried,
            attempts,
            wait_s,
        )

    backoff = Backoff(first_s=FIRST_RETRY_WAIT_S, factor=2.0, max_s=math.inf, attempts=attempts)
    try:
        retry(
            post,
            backoff=backoff,
            retryable=lambda exc: isinstance(exc, _NotDelivered),
            on_retry=warn,
        )
    except (http.AddressRefused, http.NotHttpUrl) as exc:
        logger.error("%s callback to %s not sent: %s", what, uri, exc)
        return False
    except _NotDelivered as exc:
        logger.error(
            "%s callback to %s failed after %d attempts (%s); the job is not affected",
            what,
            uri,
            tried,
            exc,
        )
        return False
    logger.info("%s callback delivered to %s", what, uri)
    return True


def status_document(*, jobs_url: str, **job: Any) -> dict[str, Any]:
    """An OGC ``statusInfo`` of the job for a callback: ``job`` gives the fields of
    :func:`core.ogc.status_info` (``job_id``, ``process_id``, ``status``, ``message``, its
    times, ``progress``), ``updated`` is now, and the one link is the job's status URL
    (``<jobs_url>/<job id>``; none without ``jobs_url``)."""
    return status_info(**job, updated=dt.datetime.now(dt.UTC), jobs_url=jobs_url)


class Notifier:
    """The callbacks of one job; in-progress is sent from a thread beside the job."""

    def __init__(
        self,
        subscriber: dict[str, Any] | None,
        logger: logging.Logger | logging.LoggerAdapter,
        settings: Settings,
    ) -> None:
        self.subscriber = subscriber or {}
        self.logger = logger
        self.settings = settings
        self._in_progress: threading.Thread | None = None
        self.results: dict[str, Any] | None = None  # the results document, once there

    def in_progress(self, document: dict[str, Any]) -> None:
        """Start delivering the running status; returns at once."""
        uri = self.subscriber.get("inProgressUri")
        if not uri:
            return
        self._in_progress = threading.Thread(
            target=deliver,
            args=(uri, document, self.logger, self.settings, "in-progress"),
            name="oapip-callback",
            daemon=True,
        )
        self._in_progress.start()

    def finish(self, uri_key: str, document: dict[str, Any], what: str) -> None:
        """Deliver the final callback (after the in-progress one, so they arrive in order)."""
        if self._in_progress is not None:
            self._in_progress.join()
        uri = self.subscriber.get(uri_key)
        if uri:
            deliver(uri, document, self.logger, self.settings, what)
