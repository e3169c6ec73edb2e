"""The cwltool backend outside the fast worker: cwltool in a process group of its own.

This is the path a stock Prefect worker takes (``python -m cwlpkg.runner`` in a new
session); cancelling a run must take cwltool and every tool it started with it.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest

from blocks.cwltool import CwltoolBackend
from tests.support import ECHO_CWL, FAILING_WORKFLOW_CWL, cwl_job, poll, sleep_cwl


@pytest.fixture
def backend(tmp_path: Path) -> CwltoolBackend:
    return CwltoolBackend(cache_dir=tmp_path / "packages", kill_grace_s=2.0)


def test_a_tool_runs_and_its_outputs_are_collected(backend: CwltoolBackend, tmp_path: Path):
    run = backend.submit(cwl_job(ECHO_CWL, {"message": "hi"}, tmp_path / "job"))
    outcome = run.wait_for_completion()
    assert outcome.success, outcome.message
    said = run.fetch_result()["said"]
    assert said["class"] == "File"
    path = Path(urlparse(said["location"]).path)
    assert path.is_relative_to(tmp_path / "job" / "outputs")
    assert path.read_text() == "hi\n"


def test_a_failing_step_is_named(backend: CwltoolBackend, tmp_path: Path):
    run = backend.submit(cwl_job(FAILING_WORKFLOW_CWL, {"word": "w"}, tmp_path / "job"))
    outcome = run.wait_for_completion()
    assert not outcome.success
    assert "explode" in outcome.message, outcome.message
    assert "greet" not in outcome.message, outcome.message


def test_cancel_kills_cwltool_and_its_tools(backend: CwltoolBackend, tmp_path: Path):
    figure = f"{random.randint(40, 90)}.{random.randint(10**6, 10**7 - 1)}"
    run = backend.submit(cwl_job(sleep_cwl("sleeper", figure), {}, tmp_path / "job"))
    waiter = threading.Thread(target=run.wait_for_completion, daemon=True)
    waiter.start()

    def tool() -> list[psutil.Process]:
        return [
            p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", figure]
        ]

    (sleeper,) = poll(tool, timeout=60, what=f"sleep {figure} running")
    group = os.getpgid(sleeper.pid)
    assert group != os.getpgid(0)  # cwltool has a process group of its own
    try:
        run.cancel()
        poll(lambda: not tool(), timeout=15, what="the tool gone")
        members = [p for p in psutil.process_iter() if _pgid(p) == group]
        assert members == [], members
        waiter.join(timeout=15)
        assert not waiter.is_alive()
    finally:
        for process in tool():
            process.kill()


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, psutil.Error):
        return None


TWO_CHATTY_STEPS_CWL = """\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: chatty
    inputs: []
    outputs:
      final:
        type: File
        outputSource: second/out
    steps:
      first:
        run: "#note"
        in: {}
        out: [out]
      second:
        run: "#note"
        in: {}
        out: [out]
  - class: CommandLineTool
    id: note
    baseCommand: [sh, -c, "echo progress >&2; echo done"]
    inputs: []
    outputs:
      out:
        type: stdout
"""


def test_every_step_of_a_workflow_may_write_to_stderr(backend: CwltoolBackend, tmp_path: Path):
    # cwltool closes the stderr it is given after each job; the next step still needs it.
    run = backend.submit(cwl_job(TWO_CHATTY_STEPS_CWL, {}, tmp_path / "job"))
    outcome = run.wait_for_completion()
    assert outcome.success, outcome.message
