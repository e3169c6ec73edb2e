"""Callbacks to an execute request's ``subscriber`` (OGC API - Processes Part 1 *callback*).

``inProgressUri`` gets the job status when the job starts running, ``successUri`` the
results document when it succeeds, ``failedUri`` the job status when it fails. Delivery
is a JSON ``POST`` retried with doubling waits (``OAPIP_CALLBACK_ATTEMPTS``,
``OAPIP_CALLBACK_TIMEOUT_S``); it runs beside the job (in-progress) or after the job's
final state is recorded (success, failure), so a slow or absent receiver never delays or
fails the job. Every failed attempt is a warning in the job's logs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

import httpx

from core.settings import Settings

__all__ = ["deliver", "status_document", "Notifier"]

FIRST_RETRY_WAIT_S = 1.0


def deliver(
    uri: str,
    document: dict[str, Any],
    logger: logging.Logger | logging.LoggerAdapter,
    settings: Settings,
    what: str,
) -> bool:
    """POST ``document`` to ``uri`` until a 2xx answer or the attempts run out.

    Returns whether it was delivered; never raises.
    """
    wait = FIRST_RETRY_WAIT_S
    for attempt in range(1, settings.callbacks.attempts + 1):
        try:
            response = httpx.post(uri, json=document, timeout=settings.callbacks.timeout_s)
            if response.is_success:
                logger.info("%s callback delivered to %s", what, uri)
                return True
            problem = f"HTTP {response.status_code}"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if attempt == settings.callbacks.attempts:
            logger.error(
                "%s callback to %s failed after %d attempts (%s); the job is not affected",
                what,
                uri,
                attempt,
                problem,
            )
            return False
        logger.warning(
            "%s callback to %s failed (%s); attempt %d of %d, retrying in %.0f s",
            what,
            uri,
            problem,
            attempt,
            settings.callbacks.attempts,
            wait,
        )
        time.sleep(wait)
        wait *= 2
    return False


def _time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_document(
    *,
    job_id: str,
    process_id: str | None,
    status: str,
    message: str,
    jobs_url: str,
    created: dt.datetime | None = None,
    started: dt.datetime | None = None,
    finished: dt.datetime | None = None,
    progress: int | None = None,
) -> dict[str, Any]:
    """An OGC ``statusInfo`` of the job for a callback, linking to the job's status URL."""
    document: dict[str, Any] = {
        "processID": process_id,
        "type": "process",
        "jobID": job_id,
        "status": status,
        "message": message,
    }
    for key, value in (("created", created), ("started", started), ("finished", finished)):
        if value is not None:
            document[key] = _time(value)
    document["updated"] = _time(dt.datetime.now(dt.UTC))
    if progress is not None:
        document["progress"] = progress
    document["links"] = (
        [
            {
                "href": f"{jobs_url}/{job_id}",
                "rel": "self",
                "type": "application/json",
                "title": "job status",
            }
        ]
        if jobs_url
        else []
    )
    return document


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
