"""The embedded stack's process handling (the full start is the session fixture)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from core.settings import Settings
from stack.local import Stack


def test_stop_returns_once_the_processes_are_gone(tmp_path: Path):
    stack = Stack(Settings(home=tmp_path))
    process = stack._start(
        "gateway", [sys.executable, "-c", "import time; time.sleep(120)"], dict(os.environ)
    )
    stopper = threading.Thread(target=stack.stop, daemon=True)
    started = time.monotonic()
    stopper.start()
    stopper.join(timeout=3)
    try:
        # Read without reaping: reaping here would be what unblocks stop().
        exited = not psutil.pid_exists(process.pid) or (
            psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE
        )
        assert exited, "SIGTERM did not end the process"
        assert not stopper.is_alive(), (
            f"stop() still running {time.monotonic() - started:.1f} s after the process ended"
        )
    finally:
        if process.poll() is None:
            process.kill()


def test_stop_kills_the_process_group_and_removes_pid_files(tmp_path: Path):
    stack = Stack(Settings(home=tmp_path))
    # A child in the same group (as the zygote is the worker's) must go too.
    script = "import subprocess, time; subprocess.Popen(['sleep', '97.531']); time.sleep(120)"
    process = stack._start("worker", [sys.executable, "-c", script], dict(os.environ))
    pid_file = tmp_path / "run" / "worker.pid"
    assert pid_file.read_text() == str(process.pid)
    reaper = threading.Thread(target=process.wait, daemon=True)
    reaper.start()
    stack.stop()
    assert process.poll() is not None
    assert not pid_file.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
