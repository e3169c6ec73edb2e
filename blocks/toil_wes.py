"""The Toil WES backend: CWL on an HPC batch scheduler, through Toil's GA4GH WES API.

One job is one WES run: a multipart ``POST /runs`` carries the packed workflow and every
local input file as attachments, the CWL job order as ``workflow_params`` and this
backend's Toil options as ``workflow_engine_parameters``; the run's
``/runs/{id}/status`` is polled (a short first interval, then backoff) until it ends;
its stderr is forwarded to the job's log; ``POST /runs/{id}/cancel`` stops it, and Toil
cancels its batch jobs with it. Toil has no authentication of its own: sites put a
basic-auth proxy in front of it (``infrastructure/hpc``), whose credentials this backend
sends.

Errors say which of three things went wrong: the WES endpoint cannot be reached
(:class:`~core.exceptions.BackendUnreachable`, after bounded retries), it refuses the
credentials (:class:`~core.exceptions.BackendAuthFailed`), or the workflow itself
failed (the run ends ``EXECUTOR_ERROR``/``SYSTEM_ERROR``; the message holds the tail of
its stderr).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote, urljoin, urlparse

import requests
from pydantic import Field, SecretStr, field_validator
from urllib3.exceptions import NameResolutionError, NewConnectionError

from blocks.backend import BackendRun, CwlJob, ExecutionBackend, RunOutcome
from core.exceptions import BackendAuthFailed, BackendError, BackendUnreachable
from core.retry import Backoff, retry
from core.settings import Settings

__all__ = ["OGC_STATUS", "ToilWesBackend"]

# WES run states (GA4GH WES 1.0 State) -> the OGC status the job has while/after the
# run is in that state.
OGC_STATUS: dict[str, str] = {
    "UNKNOWN": "accepted",
    "QUEUED": "accepted",
    "INITIALIZING": "running",
    "RUNNING": "running",
    "PAUSED": "running",
    "COMPLETE": "successful",
    "EXECUTOR_ERROR": "failed",
    "SYSTEM_ERROR": "failed",
    "CANCELING": "dismissed",
    "CANCELED": "dismissed",
    "PREEMPTED": "failed",
}
_FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
_RETRYABLE_STATUS = {502, 503, 504}  # the proxy in front of WES could not reach it
_MAX_FORWARDED_LOG_LINES = 2000
_NEVER_STARTED_AFTER_S = 5.0


class ToilWesBackend(ExecutionBackend):
    """Run application packages on an HPC site through Toil's WES endpoint.

    Example:
        ```python
        from blocks.toil_wes import ToilWesBackend
        backend = ToilWesBackend.load("hpc")
        run = backend.submit(job)
        outcome = run.wait_for_completion()
        ```
    """

    _block_type_name = "Toil WES backend"
    _block_type_slug = "toil-wes-backend"
    _description = (
        "Runs CWL application packages on an HPC batch scheduler (Slurm, HTCondor, ...) "
        "through Toil's GA4GH WES endpoint."
    )
    engine = "toil"

    url: str = Field(
        description="The WES endpoint, ending with `/ga4gh/wes/v1/`.",
        examples=["https://hpc.example.org/ga4gh/wes/v1/"],
    )
    user: str | None = Field(
        default=None,
        description="User name for basic authentication (the proxy in front of Toil).",
        examples=["oapip"],
    )
    password: SecretStr | None = Field(
        default=None, description="Password for basic authentication."
    )
    engine_parameters: dict[str, str | None] = Field(
        default_factory=dict,
        description="Toil options of every run, sent as `workflow_engine_parameters` on top "
        "of the server's own defaults; a null value is a flag.",
        examples=[{"--defaultMemory": "1Gi", "--maxCores": "2", "--retryCount": "1"}],
    )
    poll_first_s: float = Field(
        default=0.2, gt=0, description="First wait between two status polls, seconds."
    )
    poll_max_s: float = Field(
        default=1.0,
        gt=0,
        description="Longest wait between two status polls, seconds; the wait grows by "
        "half each poll up to this.",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Time allowed for one HTTP request, seconds."
    )
    attempts: int = Field(
        default=4,
        ge=1,
        description="Attempts at one request while the endpoint does not answer.",
    )
    retry_delay_s: float = Field(
        default=0.5,
        ge=0,
        description="Wait before the second attempt, seconds; doubled for each next one.",
    )
    cancel_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a cancel waits for the run to end, seconds."
    )
    stderr_tail_lines: int = Field(
        default=15,
        ge=1,
        description="Lines of the run's stderr quoted in the message of a failed job.",
    )

    @field_validator("url")
    @classmethod
    def _wes_base(cls, value: str) -> str:
        base = value.rstrip("/")
        if not base.endswith("/ga4gh/wes/v1"):
            raise ValueError(f"the WES URL must end with /ga4gh/wes/v1/, not {value!r}")
        return base + "/"

    @classmethod
    def unavailable_reason(cls, settings: Settings) -> str | None:
        """Toil needs the site's endpoint, ``OAPIP_TOIL_WES_URL``."""
        if not settings.toil.wes_url:
            return "no Toil WES endpoint is configured (OAPIP_TOIL_WES_URL)"
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The site of ``OAPIP_TOIL_WES_URL``, ``OAPIP_TOIL_WES_USER``/``_PASSWORD``."""
        return cls(
            url=settings.toil.wes_url,
            user=settings.toil.wes_user,
            password=settings.toil.wes_password,
        )

    def client(self) -> WesClient:
        """A WES client with this backend's endpoint, credentials and retry policy."""
        return WesClient(self)

    def submit(self, job: CwlJob) -> BackendRun:
        """``POST /runs`` the job; return its run (recorded in the job's work directory
        until it ends, so that it is cancelled if the job's process dies first)."""
        client = self.client()
        with _attachments(job) as (files, params):
            data = {
                "workflow_url": f"workflow.cwl#{job.entrypoint}",
                "workflow_type": "CWL",
                "workflow_type_version": str(job.workflow.get("cwlVersion", "v1.2")),
                "workflow_params": json.dumps(params),
                "workflow_engine_parameters": json.dumps(self.engine_parameters),
                "tags": json.dumps({"oapip_job_id": job.job_id, "process_id": job.process_id}),
            }
            answer = client.request("POST", "runs", data=data, files=files, idempotent=False)
        try:
            run_id = str(answer.json()["run_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"Toil WES at {client.where} answered POST /runs without a run_id: "
                f"{answer.text[:300]}"
            ) from exc
        run = ToilWesRun(self, run_id, job)
        self.record_run(job, run_id, {"run_id": run_id})
        job.logger.info("submitted to Toil WES as run %s (%s)", run_id, run.run_url)
        return run

    def stop_run(
        self, handle: dict[str, Any], logger: logging.Logger | logging.LoggerAdapter
    ) -> None:
        """Cancel WES run ``handle["run_id"]`` and wait until it has ended."""
        _cancel_run(self.client(), handle["run_id"], logger)


class WesClient:
    """``requests`` against one WES endpoint: auth, timeouts, retries, error mapping."""

    def __init__(self, backend: ToilWesBackend) -> None:
        self.backend = backend
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment between us and WES
        if backend.user is not None:
            password = backend.password.get_secret_value() if backend.password else ""
            self.session.auth = (backend.user, password)

    @property
    def where(self) -> str:
        """The endpoint as shown in messages (never with credentials)."""
        parsed = urlparse(self.backend.url)
        return f"{parsed.scheme}://{parsed.hostname}{f':{parsed.port}' if parsed.port else ''}"

    def request(
        self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any
    ) -> requests.Response:
        """``method`` on ``path`` (relative to the endpoint, or absolute); a 2xx answer.

        Connection failures and 502/503/504 are retried ``attempts`` times with doubling
        waits (for a non-idempotent request only when nothing reached WES); then
        ``BackendUnreachable``. 401/403 raise ``BackendAuthFailed``; other errors
        ``BackendError`` with WES's answer.
        """
        backend = self.backend
        url = urljoin(backend.url, path)
        # Waits double from retry_delay_s with no ceiling; `attempts` bounds them.
        backoff = Backoff(first_s=backend.retry_delay_s, max_s=math.inf, attempts=backend.attempts)
        started = time.monotonic()
        try:
            return retry(
                lambda: self._send(method, url, idempotent, kwargs),
                backoff=backoff,
                retryable=lambda exc: isinstance(exc, _Unanswered),
            )
        except _Unanswered as exc:
            raise BackendUnreachable(
                f"Toil WES at {self.where} is unreachable: {backend.attempts} attempts over "
                f"{time.monotonic() - started:.1f} s failed (last: {exc})"
            ) from exc

    def _send(
        self, method: str, url: str, idempotent: bool, kwargs: dict[str, Any]
    ) -> requests.Response:
        """One attempt at a request; ``_Unanswered`` when it is worth repeating."""
        backend = self.backend
        for _, (_, content, *_) in kwargs.get("files") or ():
            if hasattr(content, "seek"):
                content.seek(0)  # a repeated attempt sends the whole file again
        try:
            answer = self.session.request(method, url, timeout=backend.request_timeout_s, **kwargs)
        except requests.ConnectionError as exc:
            if not idempotent and not _never_sent(exc):
                raise BackendUnreachable(
                    f"Toil WES at {self.where} is unreachable: the connection broke "
                    f"during {method} {urlparse(url).path} ({type(exc).__name__})"
                ) from exc
            raise _Unanswered(f"{type(exc).__name__}: {_reason(exc)}") from exc
        except requests.Timeout as exc:
            if not idempotent:
                raise BackendUnreachable(
                    f"Toil WES at {self.where} did not answer {method} "
                    f"{urlparse(url).path} within {backend.request_timeout_s:.0f} s"
                ) from exc
            raise _Unanswered(f"no answer within {backend.request_timeout_s:.0f} s") from exc
        except requests.RequestException as exc:
            raise BackendError(f"request to Toil WES at {self.where} failed: {exc}") from exc
        if answer.status_code in (401, 403):
            raise BackendAuthFailed(
                f"Toil WES at {self.where} refused the engine's credentials "
                f"(HTTP {answer.status_code}) for user {backend.user!r}: check the "
                "backend's user and password (OAPIP_TOIL_WES_USER, "
                "OAPIP_TOIL_WES_PASSWORD)"
            )
        if answer.status_code in _RETRYABLE_STATUS:
            raise _Unanswered(f"HTTP {answer.status_code}")
        if answer.status_code >= 400:
            raise BackendError(
                f"Toil WES at {self.where} answered HTTP {answer.status_code} to "
                f"{method} {urlparse(url).path}: {answer.text[:300]}"
            )
        return answer

    def json(self, path: str) -> dict[str, Any]:
        """``GET path`` as a JSON object."""
        answer = self.request("GET", path)
        try:
            body = answer.json()
        except ValueError as exc:
            raise BackendError(
                f"Toil WES at {self.where} answered GET {path} with non-JSON: {answer.text[:200]}"
            ) from exc
        if not isinstance(body, dict):
            raise BackendError(f"Toil WES at {self.where} answered GET {path} with {body!r}")
        return body


class ToilWesRun(BackendRun):
    """One WES run of a job."""

    def __init__(self, backend: ToilWesBackend, run_id: str, job: CwlJob) -> None:
        self.run_id = run_id
        self.run_url = f"{backend.url}runs/{run_id}"
        self._backend = backend
        self._client = backend.client()
        self._job = job
        self._log: dict[str, Any] = {}
        self._ended = False

    def state(self) -> str:
        """The run's WES state now (``QUEUED``, ``RUNNING``, ``COMPLETE``, ...)."""
        return _state(self._client, self.run_id)

    def wait_for_completion(self) -> RunOutcome:
        """Poll the run's status until it ends; forward its stderr to the job's log."""
        backend, logger = self._backend, self._job.logger
        delay, last = backend.poll_first_s, ""
        while True:
            state = self.state()
            if state != last:
                logger.info(
                    "Toil WES run %s is %s (OGC: %s)",
                    self.run_id,
                    state,
                    OGC_STATUS.get(state, "running"),
                )
                last = state
            if state in _FINAL:
                break
            time.sleep(delay)
            delay = min(delay * 1.5, backend.poll_max_s)
        self._ended = True
        self._backend.forget_run(self._job, self.run_id)
        self._log = self._client.json(f"runs/{self.run_id}")
        lines = self._stderr_lines()
        if len(lines) > _MAX_FORWARDED_LOG_LINES:
            logger.info(
                "(the first %d lines of its stderr are left out)",
                len(lines) - _MAX_FORWARDED_LOG_LINES,
            )
        for line in lines[-_MAX_FORWARDED_LOG_LINES:]:
            logger.info("wes: %s", line)
        if state == "COMPLETE":
            return RunOutcome(True)
        if state == "CANCELED":
            return RunOutcome(False, f"Toil WES run {self.run_id} was cancelled outside the engine")
        tail = "\n".join(line[:300] for line in lines[-backend.stderr_tail_lines :])
        return RunOutcome(
            False,
            f"the workflow failed on Toil WES: run {self.run_id} ended {state}"
            + (f"; its stderr ends with:\n{tail}" if tail else " (it left no stderr)"),
        )

    def _stderr_lines(self) -> list[str]:
        """The run's stderr (Toil's log), fetched from its run-relative log URL."""
        link = (self._log.get("run_log") or {}).get("stderr")
        if not link:
            return []
        try:
            text = self._client.request("GET", urljoin(self.run_url, link)).text
        except BackendError as exc:
            self._job.logger.warning("could not read the stderr of run %s: %s", self.run_id, exc)
            return []
        return text.splitlines()

    def fetch_result(self) -> dict[str, Any]:
        """The CWL output object as Toil reports it.

        On a shared file system Toil answers ``file://`` locations (with ``path``) that
        stage-out reads directly; with ``--destBucket`` it answers ``s3://`` URLs, which
        are passed on as they are.
        """
        return dict(self._log.get("outputs") or {})

    def cancel(self) -> None:
        """``POST /runs/{id}/cancel`` and wait until the run has ended (Toil cancels its
        batch jobs first)."""
        if self._ended:
            return
        # A new client: the cancel may run beside a poll of the main loop.
        _cancel_run(self._backend.client(), self.run_id, self._job.logger)
        self._ended = True
        self._backend.forget_run(self._job, self.run_id)


def _cancel_run(
    client: WesClient, run_id: str, logger: logging.Logger | logging.LoggerAdapter
) -> None:
    """``POST /runs/{run_id}/cancel`` and wait until the run has ended."""
    backend = client.backend
    logger.warning("cancelling Toil WES run %s", run_id)
    try:
        client.request("POST", f"runs/{run_id}/cancel", idempotent=False)
    except BackendAuthFailed:
        raise
    except BackendError as exc:
        # A run that already ended cannot be cancelled; anything else is an error.
        if _state(client, run_id) not in _FINAL:
            raise BackendError(f"could not cancel Toil WES run {run_id}: {exc}") from exc
    asked = time.monotonic()
    deadline = asked + backend.cancel_timeout_s
    delay = backend.poll_first_s
    while (state := _state(client, run_id)) not in _FINAL:
        if state == "CANCELING" and time.monotonic() - asked > _NEVER_STARTED_AFTER_S:
            # Toil leaves a run cancelled before its leader started in CANCELING for
            # good; such a run has no batch jobs to wait for.
            run_log = client.json(f"runs/{run_id}").get("run_log") or {}
            if not run_log.get("start_time"):
                break
        if time.monotonic() > deadline:
            raise BackendError(
                f"Toil WES run {run_id} is still {state} "
                f"{backend.cancel_timeout_s:.0f} s after it was cancelled"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, backend.poll_max_s)
    logger.warning("Toil WES run %s is %s", run_id, state)


def _state(client: WesClient, run_id: str) -> str:
    """Run ``run_id``'s WES state now (``QUEUED``, ``RUNNING``, ``COMPLETE``, ...)."""
    return str(client.json(f"runs/{run_id}/status").get("state", "UNKNOWN"))


@contextlib.contextmanager
def _attachments(job: CwlJob) -> Iterator[tuple[list[tuple[str, Any]], dict[str, Any]]]:
    """The multipart files of a run and its ``workflow_params``.

    The packed workflow is ``workflow.cwl``; every local input File (``file://``, as
    stage-in leaves them) is attached as ``inputs/<n>/<name>`` and referred to by that
    relative path, which Toil resolves in the run's own directory: the site needs no
    access to the engine's disk. Other values pass unchanged.
    """
    files: list[tuple[str, Any]] = [
        ("workflow_attachment", ("workflow.cwl", json.dumps(job.workflow), "application/json"))
    ]
    opened: list[Any] = []

    def attach(value: Any) -> Any:
        if isinstance(value, list):
            return [attach(v) for v in value]
        if not isinstance(value, dict) or value.get("class") != "File":
            return value
        if value.get("secondaryFiles"):
            return value  # kept together on the shared file system
        location = str(value.get("location") or value.get("path") or "")
        if urlparse(location).scheme not in ("", "file"):
            return value
        path = Path(unquote(urlparse(location).path))
        if not path.is_file():
            return value
        name = f"inputs/{len(opened)}/{path.name}"
        handle = path.open("rb")
        opened.append(handle)
        files.append(("workflow_attachment", (name, handle, "application/octet-stream")))
        attached = {k: v for k, v in value.items() if k not in ("path", "location")}
        return {**attached, "location": name}

    try:
        params = {key: attach(value) for key, value in job.job_order.items()}
        yield files, params
    finally:
        for handle in opened:
            handle.close()


class _Unanswered(Exception):
    """WES did not answer a request (or its proxy could not reach it): worth repeating."""


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether a failed request certainly did not reach the server (so may be repeated):
    the connection was never made (refused, unresolvable, timed out connecting)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)


def _reason(exc: requests.ConnectionError) -> str:
    """Why a connection failed, in a few words and without the URL it names."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NameResolutionError):
        return "host name not found"
    if isinstance(reason, NewConnectionError):
        cause = reason.__cause__ or reason.__context__
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(reason):
            return "connection refused"
        return "cannot connect"
    return type(reason or exc).__name__
