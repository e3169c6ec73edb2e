"""``python -m bench --only sandbox``: the echo job end to end with ``OAPIP_SANDBOX=
containers`` against the same job with ``off``, in the same run.

Two stacks run side by side (each its own Prefect server, fast worker and gateway on free
loopback ports): one with tools on the host as the sandbox user (``off``, the embedded
default), one with every tool in a podman container (its image built locally,
``infrastructure.containers``). Jobs alternate between them, median of ``runs`` each
after a warm-up job; the ratio is sandboxed over off (target 1.3 or less).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

__all__ = ["run"]

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _start_stack(home: Path, extra: dict[str, str]) -> tuple[object, str]:
    """A stack in ``home`` with ``extra`` settings; ``(stack, OGC API base URL)``."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from core.settings import Settings, get_settings
    from stack.local import Stack
    from stack.prefect_auth import auth_string

    port, prefect_port = _free_port(), _free_port()
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    env = {
        "OAPIP_HOME": str(home),
        "OAPIP_PORT": str(port),
        "OAPIP_PREFECT_PORT": str(prefect_port),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        **extra,
    }
    with _environment(env):
        get_settings.cache_clear()
        stack = Stack(Settings())
        updates = {PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth_string(home)}
        try:
            with temporary_settings(updates=updates):
                stack.start()
        except BaseException:
            stack.stop()
            raise
    get_settings.cache_clear()
    base = f"http://127.0.0.1:{port}/bench/ogc-api"
    response = requests.post(
        f"{base}/processes",
        data=(HERE / "echo.cwl").read_text(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=60,
    )
    response.raise_for_status()
    return stack, base


def _echo(base: str, timeout_s: float = 120) -> float:
    """Seconds from submitting the echo job until ``successful`` is seen."""
    started = time.perf_counter()
    created = requests.post(
        f"{base}/processes/echo/execution",
        json={"inputs": {"message": "hello"}},
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    created.raise_for_status()
    url = created.headers["Location"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = requests.get(url, timeout=60).json()["status"]
        if status == "successful":
            return time.perf_counter() - started
        if status in ("failed", "dismissed"):
            raise RuntimeError(f"the echo job at {url} ended {status}")
        time.sleep(0.01)
    raise TimeoutError(f"the echo job at {url} did not end within {timeout_s:.0f} s")


def run(runs: int = 10) -> list[tuple[str, str, str, str]]:
    """Rows ``(what, sandboxed, baseline, ratio)`` of the table."""
    from infrastructure.containers.images import BASE_IMAGE, build_images
    from infrastructure.containers.podman import PodmanService

    root = Path(tempfile.mkdtemp(prefix="oapip-bench-sandbox-"))
    podman = PodmanService(root / "podman")
    stacks = []
    try:
        podman.start()
        build_images(podman)
        off, off_base = _start_stack(root / "off", {"OAPIP_SANDBOX": "off"})
        stacks.append(off)
        sandboxed, sandbox_base = _start_stack(
            root / "containers",
            {
                **podman.environment(),
                "OAPIP_SANDBOX": "containers",
                "OAPIP_CONTAINER_ENGINE": "docker",
                "OAPIP_CONTAINER_PULL": "false",
                "OAPIP_DEFAULT_IMAGE": BASE_IMAGE,
            },
        )
        stacks.append(sandboxed)
        print(f"bench: two stacks up in {root}", flush=True)
        _echo(off_base), _echo(sandbox_base)  # warm: each revision's first load
        times: dict[str, list[float]] = {"off": [], "containers": []}
        for _ in range(runs):
            times["off"].append(_echo(off_base))
            times["containers"].append(_echo(sandbox_base))
    finally:
        for stack in stacks:
            stack.stop()  # type: ignore[attr-defined]
        podman.stop()
        shutil.rmtree(root, ignore_errors=True)
    contained, baseline = statistics.median(times["containers"]), statistics.median(times["off"])
    return [
        (
            f"echo job end-to-end, OAPIP_SANDBOX=containers, median of {runs}",
            f"{contained:.3f} s",
            f"OAPIP_SANDBOX=off {baseline:.3f} s",
            f"ratio {contained / baseline:.2f} (target <= 1.3)",
        )
    ]
