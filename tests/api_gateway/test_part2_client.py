"""A Part 2 (Deploy, Replace, Undeploy) client from PyPI drives a process's whole life:
``unity-sps-ogc-processes-api-python-client`` (NASA JPL's Unity SPS client, generated from
the Part 2 draft's OpenAPI), unmodified.

It pins ``urllib3<2.1``, which the suite's own packages cannot share (selenium needs
``>=2.6.3``), so it lives in a virtualenv of its own (``.part2-client-venv``, made once
from PyPI), and ``part2_client_driver.py`` runs there; the test reads what it saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FileServer
from tests.support import ECHO_CWL

CLIENT = "unity-sps-ogc-processes-api-python-client==2.0.1"
_ROOT = Path(__file__).resolve().parents[2]
_VENV = _ROOT / ".part2-client-venv"
_DRIVER = Path(__file__).with_name("part2_client_driver.py")


@pytest.fixture(scope="session")
def part2_python() -> Path:
    """The client's virtualenv's python (made on first use); skips when PyPI is out of reach."""
    python = _VENV / "bin" / "python"
    marker = _VENV / "installed.txt"
    if not (marker.exists() and marker.read_text() == CLIENT):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(_VENV)], check=True)
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", CLIENT],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if installed.returncode != 0:
            pytest.skip(f"cannot install {CLIENT} from PyPI: {installed.stderr.strip()[-300:]}")
        marker.write_text(CLIENT)
    return python


def test_a_part2_client_drives_a_process_from_deploy_to_undeploy(
    part2_python: Path, api: str, file_server: FileServer
) -> None:
    cwl_url = file_server.add("part2-echo.cwl", ECHO_CWL)

    done = subprocess.run(
        [str(part2_python), str(_DRIVER), api, cwl_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["processes"] == ["echo"]
    assert seen["inputs"] == ["message"]
    assert seen["status"] == "successful"
    assert seen["job_id"] in seen["jobs"]
    # Raw, the 1.0 default (the client's execute body cannot name `response`): the link.
    assert seen["results"]["href"].endswith(f"/jobs/{seen['job_id']}/results/said/said.txt")
    assert seen["said"] == "hello\n"
    assert seen["dismissed"] == "dismissed"
    assert seen["after_undeploy"] == ["echo"]  # the built-in, back in place of the user's
