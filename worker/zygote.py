"""A warm process that forks one job process per flow run.

It imports Prefect, cwltool and the execution flow once, and keeps each process
revision's CWL loaded and validated; every job process is forked from it and so starts
with all of that in memory (shared copy-on-write). The zygote itself never starts a
thread or an event loop, which is what makes forking it safe.

Protocol, one JSON object per line over a socket from the worker:

* ``{"op": "run", "flow_run": {...}, "package": {...}}`` → fork; answers
  ``{"op": "started", "flow_run_id", "pid"}``;
* the zygote reports each job process that ends: ``{"op": "exited", "pid", "code"}``
  (``code`` < 0 is the signal that killed it).

When the worker goes away (EOF, or the SIGTERM the kernel sends when it dies), the zygote
kills every job's process group and exits. Each job process leads its own process group
(``setsid``) and dies with the zygote (``PR_SET_PDEATHSIG``), so dismissing a job
(``killpg``) takes every tool with it and no job outlives the engine. A dismissed job
first gets ``DISMISS_SIGNAL``: its process cancels the runs its backend started outside
it (a WES run on an HPC site), then kills its own group.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import re
import resource
import selectors
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import certifi

__all__ = ["DISMISS_SIGNAL", "main", "quiet_console"]

DISMISS_SIGNAL = signal.SIGUSR1
"""Sent by the worker to a job process whose job is dismissed (see ``_dismissed``)."""

_PR_SET_PDEATHSIG = 1
# Modules Prefect and cwltool import on first use inside a run (found by diffing
# sys.modules around a job): imported once here instead of in every job process.
_LAZY_IMPORTS = (
    "anyio._backends._asyncio",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "cwltool.executors",
    "cwltool.task_queue",
    "prefect._internal.states",
    "prefect.concurrency._asyncio",
    "prefect.concurrency._sync",
    "prefect.concurrency.services",
    "prefect.task_engine",
    "prefect.utilities.visualization",
)


def _freeze_heap() -> None:
    """Move everything alive now out of the collector's reach.

    Job processes inherit the zygote's heap copy-on-write; a collection in a job would
    touch (and so copy) every inherited object's page. Done after warm-up and after
    each preload, not per fork: a full collection costs tens of milliseconds.
    """
    gc.collect()
    gc.freeze()


def quiet_console() -> None:
    """Job processes print warnings, not every log line, to the worker's log.

    Each job's lines go to the Prefect API (the UI, ``/jobs/{id}/logs``); printing them
    too, through rich, cost a job process a fifth of its CPU.
    """
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.WARNING)


def _plain_http_tls(directory: Path) -> dict[Any, Any]:
    """Settings that spare job processes loading a CA bundle they never use.

    Prefect's client builds a certificate-verifying TLS context for every client it
    creates, plain-HTTP API or not: loading the full CA bundle costs ~20 ms a client, and
    a job creates several (a quarter of a job process's CPU). With an ``http://`` API, a
    one-certificate bundle serves; an ``https://`` API keeps the configured one.
    """
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_URL

    api = PREFECT_API_URL.value() or ""
    if not api.startswith("http://"):
        return {}
    bundle = Path(PREFECT_API_SSL_CERT_FILE.value() or certifi.where())
    match = re.search(
        r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n",
        bundle.read_text(errors="replace"),
        re.DOTALL,
    )
    if match is None:
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    small = directory / "unused-ca.pem"
    small.write_text(match.group(0))
    return {PREFECT_API_SSL_CERT_FILE: str(small)}


def _csrf_off_if_server_has_none() -> dict[Any, Any]:
    """Client CSRF support off when the server has no CSRF protection (the default).

    Otherwise every client a job creates first asks the server for a token, and is told
    each time that there is none.
    """
    import httpx
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_CSRF_SUPPORT_ENABLED

    try:
        response = httpx.get(
            f"{PREFECT_API_URL.value()}/csrf-token?client=oapip-zygote", timeout=10
        )
    except httpx.HTTPError:
        return {}
    if response.status_code == 422 and "CSRF protection is disabled" in response.text:
        return {PREFECT_CLIENT_CSRF_SUPPORT_ENABLED: False}
    return {}


def _warm_lookups() -> None:
    """Look up once what every job process would look up again: the default result
    storage block, and the server's API version (both cached by Prefect in-process, so
    job processes forked later inherit them). Best effort: a job process that finds
    them missing looks them up itself."""
    from prefect.client.orchestration import get_client
    from prefect.results import get_default_result_storage

    try:
        get_default_result_storage(_sync=True)
        with get_client(sync_client=True) as client:
            client.raise_for_api_version_mismatch_once()
    except Exception as exc:
        print(f"zygote: Prefect lookups left to job processes: {exc}", file=sys.stderr)


_RELATED_KINDS = (
    ("flow", "flow_id", "read_flow"),
    ("deployment", "deployment_id", "read_deployment"),
    ("work-queue", "work_queue_id", "read_work_queue"),
    ("work-pool", "work_pool_name", "read_work_pool"),
)


def _cache_related(flow_run: dict[str, Any]) -> None:
    """Put the run's flow, deployment, work queue and work pool in Prefect's cache of
    related resources (read for the events of every task run) once per zygote: the
    job processes forked later find them there instead of reading all four each."""
    from prefect.client.orchestration import get_client
    from prefect.events.related import RESOURCE_CACHE
    from prefect.types._datetime import now

    wanted = [
        (kind, flow_run.get(field), method)
        for kind, field, method in _RELATED_KINDS
        if flow_run.get(field) and f"{kind}.{flow_run.get(field)}" not in RESOURCE_CACHE
    ]
    if not wanted:
        return
    try:
        with get_client(sync_client=True) as client:
            for kind, key, method in wanted:
                obj = getattr(client, method)(uuid.UUID(key) if kind != "work-pool" else key)
                RESOURCE_CACHE[f"{kind}.{key}"] = ({"kind": kind, "object": obj}, now("UTC"))
    except Exception as exc:  # the job process reads them itself
        print(f"zygote: related resources not cached: {exc}", file=sys.stderr, flush=True)
    _freeze_heap()


def _die_with_parent(sig: signal.Signals = signal.SIGKILL) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


class Zygote:
    def __init__(self, sock: socket.socket, memory_limit_mib: int) -> None:
        self.sock = sock
        self.memory_limit = memory_limit_mib * 1024 * 1024
        self.children: set[int] = set()
        self.buffer = b""

    # --- warm state ------------------------------------------------------------------
    def warm(self) -> None:
        from prefect.plugins import load_prefect_collections
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        import flows.execution  # noqa: F401 - the flow every job runs
        from blocks.cwltool import mark_dedicated_job_process
        from core.secrets import install_log_redaction
        from core.settings import get_settings

        # Resolving a block class (the result storage block, for one) imports every
        # installed Prefect collection (prefect-aws, prefect-kubernetes): ~1.8 s that
        # each job process would otherwise pay again.
        load_prefect_collections()
        for module in _LAZY_IMPORTS:
            importlib.import_module(module)

        mark_dedicated_job_process()
        # Job processes inherit it: their logs reach the Prefect UI with secrets masked.
        install_log_redaction(get_settings())
        quiet_console()
        # The worker watches each job process itself, so Prefect's flow-run heartbeats
        # are not needed; without them a run ends without a ~1 s heartbeat-thread join.
        updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        updates.update(_plain_http_tls(get_settings().home / "prefect"))
        updates.update(_csrf_off_if_server_has_none())
        self._settings = temporary_settings(updates=updates)
        self._settings.__enter__()
        _warm_lookups()
        _freeze_heap()

    def preload(self, package: dict[str, Any]) -> None:
        """Load the package's CWL once; job processes forked later inherit the tool."""
        from blocks.package import ApplicationPackage
        from core.settings import get_settings
        from cwlpkg.runner import load_tool
        from flows.execution import remember_package

        app = ApplicationPackage.model_validate(package["block"])
        remember_package(package["name"], app.revision, app)
        try:
            load_tool(app.workflow, app.entrypoint, app.revision, get_settings().home / "packages")
        except Exception as exc:  # the job process reports it properly when it runs
            print(f"zygote: cannot preload {package['name']}: {exc}", file=sys.stderr, flush=True)
        _freeze_heap()

    # --- job processes ---------------------------------------------------------------
    def spawn(self, flow_run: dict[str, Any]) -> int:
        pid = os.fork()
        if pid:
            self.children.add(pid)
            return pid
        code = 1
        try:
            os.setsid()
            _die_with_parent()
            self.sock.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(DISMISS_SIGNAL, _dismissed)
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))
            code = _run_job(flow_run)
        finally:
            os._exit(code)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            cpu_s = usage.ru_utime + usage.ru_stime  # the job process and the tools it waited for
            self.send({"op": "exited", "pid": pid, "code": code, "cpu_s": round(cpu_s, 3)})

    def _terminate(self, *_: object) -> None:
        """SIGTERM (sent by the kernel when the worker dies, or by an operator)."""
        self.kill_all()
        os._exit(0)

    def kill_all(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    # --- the loop --------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def handle(self, message: dict[str, Any]) -> None:
        if message["op"] == "run":
            if message.get("package"):
                self.preload(message["package"])
            _cache_related(message["flow_run"])
            pid = self.spawn(message["flow_run"])
            self.send({"op": "started", "flow_run_id": message["flow_run"]["id"], "pid": pid})
        elif message["op"] == "preload":
            self.preload(message["package"])

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._terminate)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "sock")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        self.send({"op": "ready", "pid": os.getpid()})
        while True:
            for key, _ in selector.select():
                if key.data == "wake":
                    os.read(wake_r, 512)
                    self.reap()
                    continue
                chunk = self.sock.recv(1 << 20)
                if not chunk:  # the worker is gone: so are its jobs
                    self.kill_all()
                    return
                self.buffer += chunk
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    self.handle(json.loads(line))


def _dismissed(*_: object) -> None:
    """The worker dismisses this job: cancel its remote backend runs, then end the group.

    Runs as a signal handler in the job's main thread. Remote runs (a WES run) would
    outlive the process group the worker kills; a cancel waits until the run is gone.
    The job process then kills its own group (itself and every tool it started) without
    recording a state: the worker records the run CANCELLED.
    """
    from prefect.logging.handlers import APILogWorker

    from blocks.backend import cancel_remote_runs

    cancelled = 0
    try:
        cancelled = cancel_remote_runs()
    finally:
        if cancelled:
            with contextlib.suppress(Exception):
                APILogWorker.drain_all(timeout=5)  # the cancel's log lines reach the flow run
        os.killpg(0, signal.SIGKILL)


def _run_job(flow_run_json: dict[str, Any]) -> int:
    """Body of a job process: run the flow run to a final state; 0 if it completed."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.events.worker import EventsWorker
    from prefect.flow_engine import run_flow
    from prefect.logging.handlers import APILogWorker

    from flows.execution import execute_process

    flow_run = FlowRun.model_validate(flow_run_json)
    # Prefect starts a suspension observer (a thread, an event loop and a websocket
    # subscription, ~0.25 s) for every run that has a deployment id. The execution flow
    # never suspends itself, so the engine gets the run without it; the run on the
    # server keeps its deployment.
    flow_run = flow_run.model_copy(update={"deployment_id": None})
    try:
        state = run_flow(execute_process, flow_run=flow_run, return_type="state")
    finally:
        # The process ends with os._exit (no atexit): hand over queued logs and events.
        EventsWorker.drain_all(timeout=10)
        APILogWorker.drain_all(timeout=10)
    return 0 if state.is_completed() else 3


def main() -> None:
    fd = int(sys.argv[1])
    memory_limit_mib = int(sys.argv[2])
    # SIGTERM, not SIGKILL, when the worker dies: the zygote first kills every job's
    # process group, tools included (a job process dying alone would orphan its tools).
    _die_with_parent(signal.SIGTERM)
    sock = socket.socket(fileno=fd)
    zygote = Zygote(sock, memory_limit_mib)
    zygote.warm()
    zygote.serve()


if __name__ == "__main__":
    main()
