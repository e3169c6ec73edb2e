"""The Toil WES backend Block: configuration, and its errors against real HTTP servers.

End-to-end jobs on the HPC site are in ``tests/api_gateway/test_hpc_execution.py``; here
the Block is used directly, against the session's WES site where one is needed and
against the basic-auth proxy in front of a WES that is down.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from blocks.backend import CwlJob
from blocks.registry import backend_for
from blocks.toil_wes import ToilWesBackend
from core.exceptions import BackendAuthFailed, BackendUnreachable
from core.settings import Settings
from tests.conftest import free_port
from tests.hpc import Hpc
from tests.support import poll

PROXY = Path(__file__).resolve().parents[2] / "infrastructure" / "hpc" / "wes_auth_proxy.py"
URL = "https://hpc.example.org/ga4gh/wes/v1/"


def _job(tmp_path: Path) -> CwlJob:
    tool = {
        "cwlVersion": "v1.2",
        "$graph": [{"class": "CommandLineTool", "id": "#main", "baseCommand": "true"}],
    }
    return CwlJob(
        job_id="job-1",
        process_id="noop",
        workflow=tool,
        entrypoint="main",
        job_order={},
        workdir=tmp_path,
        logger=logging.getLogger("test"),
    )


def test_the_url_must_be_a_wes_endpoint():
    assert ToilWesBackend(url=URL.rstrip("/")).url == URL
    with pytest.raises(ValueError, match="/ga4gh/wes/v1/"):
        ToilWesBackend(url="https://hpc.example.org/")


def test_the_password_never_shows():
    backend = ToilWesBackend(url=URL, user="oapip", password="s3cret")
    assert "s3cret" not in repr(backend) and "s3cret" not in str(backend.model_dump())


def test_settings_select_toil_engine_wide(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OAPIP_EXECUTION_ENGINE", "toil")
    monkeypatch.setenv("OAPIP_TOIL_WES_URL", URL)
    monkeypatch.setenv("OAPIP_TOIL_WES_USER", "oapip")
    monkeypatch.setenv("OAPIP_TOIL_WES_PASSWORD", "s3cret")
    settings = Settings()
    backend = backend_for(None, settings)
    assert isinstance(backend, ToilWesBackend)
    assert (backend.url, backend.user) == (URL, "oapip")
    assert backend.password is not None and backend.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    # A process that names cwltool still runs on cwltool.
    assert type(backend_for("cwltool", settings)).__name__ == "CwltoolBackend"


def test_toil_engine_wide_needs_a_url(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OAPIP_EXECUTION_ENGINE", "toil")
    monkeypatch.delenv("OAPIP_TOIL_WES_URL", raising=False)
    with pytest.raises(ValueError, match="OAPIP_TOIL_WES_URL"):
        Settings()


@pytest.fixture
def proxy_to_nowhere(tmp_path: Path) -> Iterator[str]:
    """The basic-auth proxy in front of a WES that is down; its WES URL."""
    password = tmp_path / "password"
    password.write_text("pw\n")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROXY),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"http://127.0.0.1:{free_port()}",
            "--user",
            "oapip",
            "--password-file",
            str(password),
        ],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/ga4gh/wes/v1/"

    def answers() -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 401
        except requests.ConnectionError:
            return False

    try:
        poll(answers, timeout=30, what="the proxy answering")
        yield url
    finally:
        process.kill()
        process.wait()


def test_the_proxy_wants_credentials(proxy_to_nowhere: str, tmp_path: Path):
    backend = ToilWesBackend(url=proxy_to_nowhere, user="oapip", password="wrong")
    with pytest.raises(BackendAuthFailed, match=r"refused the engine's credentials \(HTTP 401\)"):
        backend.submit(_job(tmp_path))


def test_a_wes_down_behind_its_proxy_is_unreachable(proxy_to_nowhere: str, tmp_path: Path):
    backend = ToilWesBackend(
        url=proxy_to_nowhere, user="oapip", password="pw", attempts=3, retry_delay_s=0.05
    )
    with pytest.raises(BackendUnreachable, match=r"3 attempts .* \(last: HTTP 502\)"):
        backend.submit(_job(tmp_path))


def test_the_site_answers_only_with_credentials(hpc: Hpc):
    info = f"{hpc.wes_url}service-info"
    assert requests.get(info, timeout=30).status_code == 401
    assert requests.get(info, auth=(hpc.user, "wrong"), timeout=30).status_code == 401
    answer = requests.get(info, auth=(hpc.user, hpc.password), timeout=30)
    assert answer.status_code == 200
    assert "v1.2" in answer.json()["workflow_type_versions"]["cwl"]["workflow_type_version"]


def test_local_input_files_travel_with_the_run(tmp_path: Path):
    from blocks.toil_wes import _attachments

    data = tmp_path / "scene.txt"
    data.write_text("pixels")
    job = _job(tmp_path)
    order = {
        "scene": {"class": "File", "location": data.as_uri()},
        "remote": {"class": "File", "location": "s3://bucket/key.tif"},
        "many": [{"class": "File", "path": str(data)}],
        "size": "50%",
    }
    job = CwlJob(**{**job.__dict__, "job_order": order})
    with _attachments(job) as (files, params):
        names = [name for _, (name, *_) in files]
        assert names == ["workflow.cwl", "inputs/0/scene.txt", "inputs/1/scene.txt"]
        assert params["scene"] == {"class": "File", "location": "inputs/0/scene.txt"}
        assert params["many"] == [{"class": "File", "location": "inputs/1/scene.txt"}]
        assert params["remote"] == order["remote"] and params["size"] == "50%"
        assert files[1][1][1].read() == b"pixels"
