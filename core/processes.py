"""Stopping a process group: the one way the engine ends what it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time

__all__ = ["stop_process_group"]


def stop_process_group(
    pgid: int, proc: subprocess.Popen | None = None, grace_s: float = 10.0
) -> None:
    """SIGTERM the process group ``pgid``, SIGKILL it after ``grace_s`` seconds.

    Returns once no process of the group is left. ``proc``, the group leader when it is
    our child, is reaped on the way: an unreaped child is a zombie that keeps its group
    alive.
    """
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
