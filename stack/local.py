"""Set up Prefect for the engine, and run the embedded single-machine stack.

``setup`` is idempotent and is what every start runs: check the engine-wide backend, register
the block types (every backend's through :mod:`blocks.registry`), save the result-storage
block, create the work pool and the generic flow. ``Stack`` starts the
Prefect server (SQLite in ``OAPIP_HOME`` or ``OAPIP_DATABASE_URL``), a worker and the
gateway as child processes, records their PIDs and stops them by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from core.naming import FAST_POOL_TYPE, FLOW_NAME, RESULT_STORAGE_BLOCK
from core.processes import stop_process_group
from core.settings import Settings

__all__ = [
    "Stack",
    "kubernetes_job_template",
    "prefect_env",
    "setup",
    "wait_for_http",
]

# The fast worker needs no per-run infrastructure settings; Prefect still wants a template.
_FAST_TEMPLATE = {
    "job_configuration": {"env": "{{ env }}"},
    "variables": {
        "type": "object",
        "properties": {
            "env": {
                "type": "object",
                "title": "Environment",
                "default": {},
                "description": "Reserved; the fast worker runs jobs in its own environment.",
            }
        },
    },
}


def kubernetes_job_template(defaults: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Base job template of a ``kubernetes`` work pool: flow runs as Jobs in the engine's image.

    prefect-kubernetes' default with ``completions``/``parallelism`` moved from the pod spec
    to the Job spec (where the Kubernetes schema has them), a non-root security context
    and the engine's defaults (image, namespace, service account, resources).
    ``prefect work-pool create --base-job-template`` takes the same file. ``defaults``
    replaces the default of job variables (``image``, ``namespace``,
    ``service_account_name``); unset values keep the file's.
    """
    template = json.loads((Path(__file__).parent / "kubernetes_job_template.json").read_text())
    for name, value in (defaults or {}).items():
        if value:
            template["variables"]["properties"][name]["default"] = value
    return template


def prefect_env(settings: Settings, *, server: bool = False) -> dict[str, str]:
    """Environment for the engine's processes: Prefect offline, pointed at our server.

    Workers copy their own PREFECT_* settings into every job, so only the server gets
    the database URL.
    """
    env = {
        **os.environ,
        "PREFECT_HOME": str(settings.home / "prefect"),
        "PREFECT_API_URL": settings.prefect.api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": RESULT_STORAGE_BLOCK,
        "OAPIP_HOME": str(settings.home),
    }
    if settings.stack.database_url and "OAPIP_PREFECT_WRITE_CONCURRENCY" not in os.environ:
        env["OAPIP_PREFECT_WRITE_CONCURRENCY"] = "8"  # PostgreSQL takes concurrent writers
    if server:
        if settings.stack.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = settings.stack.database_url
        else:
            env.setdefault(
                "PREFECT_API_DATABASE_CONNECTION_URL",
                f"sqlite+aiosqlite:///{settings.home / 'prefect' / 'prefect.db'}",
            )
        # The stack has its own worker; the server's own services stay, minus telemetry.
        env["PREFECT_SERVER_UI_API_URL"] = settings.prefect.api_url
        # A job waiting for a free slot is queued, not late: Prefect's 15 s default
        # turned most of a burst of jobs Late (one more state change, with its event,
        # per job) while the worker was draining the queue as fast as it could.
        env.setdefault("PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS", "300")
    else:
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    return env


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


async def _setup(settings: Settings, pool_type: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.filesystems import LocalFileSystem
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    from blocks import registry
    from blocks.package import ApplicationPackage
    from blocks.storage import LocalResultStorage

    if settings.execution.engine not in registry.names(settings):
        raise ValueError(
            f"OAPIP_EXECUTION_ENGINE={settings.execution.engine!r} is not an execution "
            f"backend; the backends are {', '.join(registry.names(settings))}"
        )
    async with get_client() as client:
        for block_class in (
            ApplicationPackage,
            *registry.block_types(settings),
            LocalResultStorage,
            LocalFileSystem,
        ):
            await block_class.register_type_and_schema(client=client)
        storage = LocalFileSystem(basepath=str(settings.home / "prefect-results"))
        await storage.save(RESULT_STORAGE_BLOCK.split("/")[1], overwrite=True, client=client)
        if pool_type == FAST_POOL_TYPE:
            template = _FAST_TEMPLATE
        elif pool_type == "kubernetes":
            template = kubernetes_job_template(
                {
                    "image": settings.kubernetes_pool.image,
                    "namespace": settings.kubernetes_pool.namespace,
                    "service_account_name": settings.kubernetes_pool.service_account,
                }
            )
        else:
            template = await get_default_base_job_template_for_infrastructure_type(pool_type)
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(
                WorkPoolCreate(
                    name=settings.prefect.work_pool,
                    type=pool_type,
                    base_job_template=template or {},
                )
            )
        await client.create_flow_from_name(FLOW_NAME)


def setup(settings: Settings, *, pool_type: str = FAST_POOL_TYPE) -> None:
    """Prepare the Prefect server for the engine (idempotent)."""
    asyncio.run(_setup(settings, pool_type))


@dataclass
class Stack:
    """The embedded stack's processes, started in order and stopped by PID."""

    settings: Settings
    worker: str = "fast"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.settings.home / "run"

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = (self.settings.home / "logs").resolve()
        log.mkdir(parents=True, exist_ok=True)
        with open(log / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        (self.run_dir / f"{name}.pid").write_text(str(proc.pid))
        self.processes[name] = proc
        return proc

    def start(self) -> None:
        """Start the server, set Prefect up for the engine, start the worker and gateway."""
        self.start_server()
        os.environ.update(
            {
                k: v
                for k, v in prefect_env(self.settings).items()
                if k.startswith(("PREFECT_", "OAPIP_"))
            }
        )
        setup(self.settings, pool_type=FAST_POOL_TYPE if self.worker == "fast" else "process")
        self.start_worker()
        self.start_gateway()

    def start_server(self) -> None:
        """Start the Prefect server; return once it answers."""
        s = self.settings
        (s.home / "prefect").mkdir(parents=True, exist_ok=True)
        server = self._start(
            "prefect-server",
            [
                str(Path(sys.executable).parent / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(s.stack.prefect_port),
            ],
            prefect_env(s, server=True),
        )
        # 4-11 s on an idle machine; past 90 s on two cores shared with other servers.
        wait_for_http(f"{s.prefect.api_url.rstrip('/')}/health", 180, server)

    def start_worker(self) -> None:
        """Start the worker (it needs no wait: it picks up runs once it is ready)."""
        s = self.settings
        if self.worker == "fast":
            self._start("worker", [sys.executable, "-m", "worker.fast"], prefect_env(s))
        else:
            self._start(
                "worker",
                [
                    str(Path(sys.executable).parent / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    s.prefect.work_pool,
                    "--type",
                    "process",
                ],
                prefect_env(s),
            )

    def start_gateway(self) -> None:
        """Start the gateway; return once it answers."""
        s = self.settings
        gateway = self._start(
            "gateway",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api_gateway.main:app",
                "--host",
                s.stack.host,
                "--port",
                str(s.stack.port),
                "--no-access-log",
            ],
            prefect_env(s),
        )
        wait_for_http(f"http://{s.stack.host}:{s.stack.port}/health", 60, gateway)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the ``name`` process alone (not its group) and reap it.

        Fault tests use it: what the process started must then clean up by itself.
        """
        proc = self.processes.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        (self.run_dir / f"{name}.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop what this stack started (or, from PID files, what an earlier start left)."""
        for name in ("gateway", "worker", "prefect-server"):
            self.stop_one(name)

    def stop_one(self, name: str) -> None:
        """Stop the ``name`` process and everything in its process group."""
        pid_file = self.run_dir / f"{name}.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        stop_process_group(pid, self.processes.pop(name, None))
        pid_file.unlink(missing_ok=True)
