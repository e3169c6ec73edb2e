"""A warm process that forks one job process per flow run.

It imports Prefect, cwltool and the execution flow once, and keeps each process
revision's CWL loaded and validated; every job process is forked from it and so starts
with all of that in memory (shared copy-on-write). The zygote itself never starts a
thread or an event loop, which is what makes forking it safe.

The worker and the zygote talk over a socket in the messages of :mod:`worker.protocol`:
a ``Run`` forks a job process (answered ``Started``), and each job process that ends is
reported ``Exited``.

When the worker goes away (EOF, or the SIGTERM the kernel sends when it dies), the zygote
kills every job's process group and exits. Each job process leads its own process group
(``setsid``) and dies with the zygote (``PR_SET_PDEATHSIG``), so dismissing a job
(``killpg``) takes every tool with it and no job outlives the engine. What a job's
backend runs outside the group (a WES run, a namespace, containers) is recorded in the
job's work directory, and the worker stops it once the group is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
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

from worker.protocol import Exited, Message, Package, Ready, Run, Started, decode, encode

__all__ = ["main", "quiet_console"]

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
    each package loaded, not per fork: a full collection costs tens of milliseconds.
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
        from blocks.backend import mark_dedicated_job_process
        from blocks.registry import block_types
        from core.secrets import install_log_redaction
        from core.settings import get_settings

        # Resolving a block class (the result storage block, for one) imports every
        # installed Prefect collection (prefect-aws, prefect-kubernetes): ~1.8 s that
        # each job process would otherwise pay again.
        load_prefect_collections()
        for module in _LAZY_IMPORTS:
            importlib.import_module(module)
        try:
            # Every backend class (and site module) imported once, not in each job process.
            block_types(get_settings())
        except Exception as exc:  # a job process that needs the backend reports it
            print(f"zygote: backends left to job processes: {exc}", file=sys.stderr)

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

    def preload(self, package: Package) -> None:
        """Load the package's CWL once; job processes forked later inherit the tool."""
        from blocks.package import ApplicationPackage
        from core.settings import get_settings
        from cwlpkg.runner import load_tool
        from flows.execution import remember_package

        app = ApplicationPackage.model_validate(package.block)
        remember_package(package.name, app.revision, app)
        try:
            load_tool(app.workflow, app.entrypoint, app.revision, get_settings().home / "packages")
        except Exception as exc:  # the job process reports it properly when it runs
            print(f"zygote: cannot preload {package.name}: {exc}", file=sys.stderr, flush=True)
        _freeze_heap()

    # --- job processes ---------------------------------------------------------------
    def spawn(self, flow_run: dict[str, Any], timeout_s: float | None = None) -> int:
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
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))
            code = _run_job(flow_run, timeout_s)
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
            self.send(Exited(pid, code, round(cpu_s, 3)))

    def _terminate(self, *_: object) -> None:
        """SIGTERM (sent by the kernel when the worker dies, or by an operator)."""
        self.kill_all()
        os._exit(0)

    def kill_all(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    # --- the loop --------------------------------------------------------------------
    def send(self, message: Message) -> None:
        self.sock.sendall(encode(message))

    def handle(self, message: Message) -> None:
        if not isinstance(message, Run):
            raise ValueError(f"the zygote takes only Run messages, not {message!r}")
        if message.package is not None:
            self.preload(message.package)
        _cache_related(message.flow_run)
        pid = self.spawn(message.flow_run, message.timeout_s)
        self.send(Started(message.flow_run["id"], pid))

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._terminate)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "sock")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        self.send(Ready(os.getpid()))
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
                    self.handle(decode(line))


def _run_job(flow_run_json: dict[str, Any], timeout_s: float | None = None) -> int:
    """Body of a job process: run the flow run to a final state; 0 if it completed.

    ``timeout_s`` is the job's time limit: Prefect's flow-run timeout ends the run FAILED
    past it (the worker stops the job's tools and remote runs when the process exits).
    """
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
        flow = execute_process
        if timeout_s is not None:
            flow = execute_process.with_options(timeout_seconds=timeout_s)
        state = run_flow(flow, flow_run=flow_run, return_type="state")
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
