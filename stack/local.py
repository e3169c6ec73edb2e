"""The embedded single-machine stack: Prefect server, worker and gateway as processes.

``Stack`` starts the Prefect server (SQLite in ``OAPIP_HOME`` or ``OAPIP_DATABASE_URL``),
sets Prefect up for the engine (:mod:`stack.setup`), starts a worker and the gateway as
child processes, records their PIDs and stops them by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.naming import FAST_POOL_TYPE, RESULT_STORAGE_BLOCK
from core.processes import stop_process_group
from core.settings import Settings
from stack.prefect_auth import auth_string
from stack.scaleout import api_argv, redis_env, scaled_out
from stack.setup import setup
from stack.tuning import LEAN_SERVER

__all__ = ["Stack", "prefect_env", "wait_for_http"]


def prefect_env(settings: Settings, *, server: bool = False) -> dict[str, str]:
    """Environment for the engine's processes: Prefect offline, pointed at our server.

    Workers copy their own PREFECT_* settings into every job, so only the server gets
    the database URL. Every process gets the API's credentials (:mod:`stack.prefect_auth`),
    unless the environment names its own.
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
    env.setdefault("PREFECT_API_AUTH_STRING", auth_string(settings.home))
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
        env["PREFECT_SERVER_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"]
        # The stack has its own worker; the server's own services stay, minus telemetry.
        env["PREFECT_SERVER_UI_API_URL"] = settings.prefect.api_url
        # A job waiting for a free slot is queued, not late: Prefect's 15 s default
        # turned most of a burst of jobs Late (one more state change, with its event,
        # per job) while the worker was draining the queue as fast as it could.
        env.setdefault("PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS", "300")
        for name, value in LEAN_SERVER.items():
            env.setdefault(name, value)
        # Concurrency leases (a running job's slot of its user's limit) on disk, not in
        # memory: a restarted server still knows them and frees them when they expire.
        env.setdefault(
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
            "prefect.server.concurrency.lease_storage.filesystem",
        )
    else:
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
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
        # Always: a process may keep its jobs' results for less than the site (or for a
        # while when the site keeps them for ever); a run with nothing to do ends at once.
        self.start_housekeeping()
        self.start_gateway()

    def start_server(self) -> None:
        """Start the Prefect server; return once it answers."""
        s = self.settings
        (s.home / "prefect").mkdir(parents=True, exist_ok=True)
        prefect = str(Path(sys.executable).parent / "prefect")
        argv = [
            prefect,
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(s.stack.prefect_port),
        ]
        env = api_env = prefect_env(s, server=True)
        if scaled_out(s):  # Prefect's production shape (stack/scaleout.py)
            env.update(redis_env(s))
            argv, api_env = api_argv(s, env)
            self._start("prefect-services", [prefect, "server", "services", "start"], env)
        server = self._start("prefect-server", argv, api_env)
        # 4-11 s on an idle machine; past 90 s on two cores shared with other servers.
        wait_for_http(f"{s.prefect.api_url.rstrip('/')}/health", 300, server)

    def start_worker(self) -> None:
        """Start the worker (it needs no wait: it picks up runs once it is ready)."""
        s = self.settings
        if self.worker == "fast":
            for i in range(s.stack.fast_workers):  # one pool: each run claimed once
                name = "worker" if i == 0 else f"worker-{i + 1}"
                self._start(name, [sys.executable, "-m", "worker.fast"], prefect_env(s))
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

    def start_housekeeping(self) -> None:
        """Serve the housekeeping deployment (``flows.housekeeping``): it registers the
        deployment and its schedule, then runs its runs."""
        self._start(
            "housekeeping", [sys.executable, "-m", "flows.housekeeping"], prefect_env(self.settings)
        )

    def start_gateway(self) -> None:
        """Start the gateway; return once it answers."""
        s = self.settings
        env = prefect_env(s)
        if s.stack.database_url and s.stack.database_url.startswith("postgresql"):
            # The job outbox is a table of Prefect's database (ogc_prefect/outbox.py).
            env.setdefault("OAPIP_OUTBOX_DATABASE_URL", s.stack.database_url)
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
            env,
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
        workers = sorted(p.stem for p in self.run_dir.glob("worker*.pid"))
        for name in ("gateway", "housekeeping", *workers, "prefect-services", "prefect-server"):
            self.stop_one(name)

    def stop_one(self, name: str) -> None:
        """Stop the ``name`` process and everything in its process group."""
        pid_file = self.run_dir / f"{name}.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        stop_process_group(pid, self.processes.pop(name, None))
        pid_file.unlink(missing_ok=True)
