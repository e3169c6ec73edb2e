"""Podman as a docker-compatible service in a folder of ours.

Debian's podman 4.3 runs containers on these machines (2 cores, no systemd, cgroup v1)
with ``runtime = "runc"``, the ``cgroupfs`` manager and lowered ``default_ulimits``
(docs/architecture.md §6). Everything podman keeps (configuration, image storage, run state, the API
socket, the service's PID and log) lives under one folder, so a test session or a
developer's stack never touches the machine's own podman storage.

Example:
    ```python
    service = PodmanService(Path("/tmp/podman"))
    service.start()
    os.environ.update(service.environment())  # DOCKER_HOST=unix:///tmp/podman/podman.sock
    ...
    service.stop()
    ```
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.exceptions import ContainerEngineError
from core.processes import stop_process_group

__all__ = ["PodmanService", "containers_conf", "storage_conf"]

# Debian's defaults (1048576 open files) make runc fail in these sandboxes; 8192 is ample.
ULIMIT = 8192
START_TIMEOUT_S = 30.0


def containers_conf() -> str:
    """The ``containers.conf`` the service reads through ``CONTAINERS_CONF``.

    No default network here: docker clients name theirs (cwltool: ``--net=none``, or
    the backend's ``network`` setting, ``host`` in the tests, for tools with network
    access).
    """
    return f"""\
[containers]
default_ulimits = ["nofile={ULIMIT}:{ULIMIT}", "nproc={ULIMIT}:{ULIMIT}"]

[engine]
runtime = "runc"
# No systemd on these machines: cgroups by hand, events in a file.
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def storage_conf(root: Path) -> str:
    """The ``storage.conf`` (through ``CONTAINERS_STORAGE_CONF``): images under ``root``."""
    return f"""\
[storage]
driver = "overlay"
graphroot = "{root / "storage"}"
runroot = "{root / "run"}"
"""


@dataclass
class PodmanService:
    """``podman system service`` listening on ``<folder>/podman.sock``.

    Attributes:
        folder: where configuration, storage, socket, PID file and log live.
    """

    folder: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def socket_path(self) -> Path:
        return self.folder / "podman.sock"

    @property
    def pid_file(self) -> Path:
        return self.folder / "podman.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "podman.log"

    @property
    def docker_host(self) -> str:
        """The ``DOCKER_HOST`` value that points docker clients at this service."""
        return f"unix://{self.socket_path}"

    def environment(self) -> dict[str, str]:
        """Variables for processes that use the service: docker clients and podman itself."""
        return {
            "DOCKER_HOST": self.docker_host,
            "CONTAINERS_CONF": str(self.folder / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.folder / "storage.conf"),
        }

    def configure(self) -> None:
        """Write ``containers.conf`` and ``storage.conf`` into the folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "containers.conf").write_text(containers_conf())
        (self.folder / "storage.conf").write_text(storage_conf(self.folder))

    def podman(self, *args: str, stdin: bytes | None = None, timeout_s: float = 300.0) -> str:
        """Run ``podman ARGS`` against this folder's storage; its stdout.

        Raises:
            ContainerEngineError: podman is missing or the command failed.
        """
        try:
            done = subprocess.run(
                ["podman", *args],
                input=stdin,
                capture_output=True,
                env={**os.environ, **self.environment()},
                timeout=timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ContainerEngineError(f"podman {args[0]} did not run: {exc}") from exc
        if done.returncode != 0:
            raise ContainerEngineError(
                f"podman {' '.join(args[:2])} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace').strip()[-1000:]}"
            )
        return done.stdout.decode(errors="replace")

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Configure, start the service in a session of its own, wait until it answers.

        Raises:
            ContainerEngineError: podman or runc is not installed, or the service did
                not answer ``/_ping`` within ``timeout_s`` seconds.
        """
        missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
        if missing:
            raise ContainerEngineError(
                f"{', '.join(missing)} not found: install Debian's podman and runc "
                "(`./dev test` does, as root)"
            )
        if self.running():
            return
        self.configure()
        self.socket_path.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.docker_host],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.environment()},
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process_group(process.pid, process, grace_s=2.0)
                self.pid_file.unlink(missing_ok=True)
                tail = self.log_file.read_text(errors="replace")[-1000:]
                raise ContainerEngineError(
                    f"podman system service did not answer on {self.socket_path}: {tail}"
                )
            time.sleep(0.05)
        self._process = process

    def running(self) -> bool:
        """True when the service this folder's PID file names answers on the socket."""
        return self._pid() is not None and self._answers()

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the service named by the PID file (its whole process group)."""
        pid = self._pid()
        if pid is not None:
            stop_process_group(pid, self._process, grace_s)
        self._process = None
        self.pid_file.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._release_mounts()

    def _release_mounts(self) -> None:
        """Unmount what podman left mounted under the folder, so it can be deleted.

        The overlay driver bind-mounts its own storage folder and keeps it mounted
        after the service has gone.
        """
        prefix = f"{self.folder}/"
        mounts = []
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                point = line.split()[4].replace("\\040", " ")
                if point.startswith(prefix):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True, check=False)

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def _answers(self) -> bool:
        """True when ``GET /_ping`` on the socket answers 200."""
        if not self.socket_path.exists():
            return False
        connection = _UnixHTTPConnection(self.socket_path)
        try:
            connection.request("GET", "/_ping")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the podman API)."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.ExitStack() as failure:
            failure.callback(self.sock.close)
            self.sock.settimeout(self.timeout)
            self.sock.connect(str(self._path))
            failure.pop_all()
