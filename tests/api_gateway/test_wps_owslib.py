"""OWSLib's WPS client (a real third-party client, unpatched) against the session's stack.

It lists, describes and executes a deployed CWL process through ``/{user}/wps``
synchronously and asynchronously (polling the statusLocation), and reads its outputs:
the literal by value, the file by reference. OWSLib speaks WPS 1.0.0 only.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from owslib.wps import ASYNC, SYNC, BoundingBoxDataInput, ComplexDataInput, WebProcessingService

from tests.api_gateway.wps_support import SYNC_TIMEOUT_S, WPS_ECHO_CWL
from tests.conftest import Engine, FileServer
from tests.support import deploy_cwl

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture(scope="module")
def client(engine: Engine, file_server: FileServer) -> dict[str, Any]:
    user = f"owslib-{uuid.uuid4().hex[:6]}"
    api = engine.api(user)
    deploy_cwl(api, WPS_ECHO_CWL)
    return {
        "api": api,
        "wps": WebProcessingService(f"{engine.url}/{user}/wps", timeout=SYNC_TIMEOUT_S),
        "file": file_server.add(f"{user}.txt", "from the file server\n"),
    }


def _inputs(client: dict[str, Any], message: str) -> list[tuple[str, Any]]:
    return [
        ("message", message),
        ("times", "2"),
        ("aoi", BoundingBoxDataInput([1, 2, 3, 4], crs=CRS84)),
        ("infile", ComplexDataInput(client["file"], mimeType="text/plain")),
        ("tags", "a"),
        ("tags", "b"),
    ]


def _check_outputs(client: dict[str, Any], execution, message: str, tmp_path: Path) -> None:
    """The outputs OWSLib read: ``said`` by value, ``report`` by reference, both the OGC
    API's results of the same job."""
    outputs = {o.identifier: o for o in execution.processOutputs}
    said = outputs["said"].data[0]
    name = client["file"].rsplit("/", 1)[1]
    assert said.strip() == f"{message} x 2 quiet aoi 1,2,3,4 {CRS84} file {name} tags a b"
    job_id = execution.statusLocation.rsplit("/", 1)[1] if execution.statusLocation else None
    report = outputs["report"]
    assert report.mimeType == "text/plain"
    # The local result store's files are served by the gateway: OWSLib downloads them.
    assert report.reference.startswith(("http://", "https://")), report.reference
    execution.getOutput(str(tmp_path / "report.txt"), identifier="report")
    # OWSLib strips the literal's text; the file holds the tool's output as it wrote it.
    assert (tmp_path / "report.txt").read_text().strip() == said.strip()
    if job_id:
        results = requests.get(f"{client['api']}/jobs/{job_id}/results", timeout=30).json()
        # OWSLib strips the literal's text; the tool's output ends with a newline.
        assert results["said"].strip() == said.strip()
        assert results["report"]["href"] == report.reference


def test_owslib_lists_and_describes(client: dict[str, Any]):
    wps = client["wps"]
    assert wps.identification.type == "WPS"
    assert [p.identifier for p in wps.processes] == ["echo", "wps-echo"]  # built-in first
    process = wps.describeprocess("wps-echo")
    assert process.title == "WPS echo" and process.storeSupported and process.statusSupported
    inputs = {i.identifier: i for i in process.dataInputs}
    assert inputs["message"].dataType == "string" and inputs["message"].minOccurs == 1
    assert inputs["times"].dataType == "integer" and inputs["times"].defaultValue == 1
    assert inputs["mode"].allowedValues == ["loud", "quiet"]
    assert inputs["tags"].maxOccurs == 999
    assert inputs["aoi"].dataType == "BoundingBoxData"
    assert inputs["infile"].dataType == "ComplexData"
    outputs = {o.identifier: o for o in process.processOutputs}
    assert outputs["said"].dataType == "string"
    assert outputs["report"].dataType == "ComplexData"


def test_owslib_executes_synchronously(client: dict[str, Any], tmp_path: Path):
    execution = client["wps"].execute(
        "wps-echo",
        _inputs(client, "sync"),
        output=[("said", False, None), ("report", True, None)],
        mode=SYNC,
    )
    assert execution.isSucceeded(), [(e.code, e.text) for e in execution.errors]
    _check_outputs(client, execution, "sync", tmp_path)


def test_owslib_executes_asynchronously(client: dict[str, Any], tmp_path: Path):
    execution = client["wps"].execute(
        "wps-echo",
        _inputs(client, "async"),
        output=[("said", False, None), ("report", True, None)],
        mode=ASYNC,
    )
    assert execution.statusLocation, execution.response
    job_id = execution.statusLocation.rsplit("/", 1)[1]
    deadline = time.monotonic() + 90
    while not execution.isComplete():  # monitorExecution, with a deadline
        assert time.monotonic() < deadline, execution.status
        execution.checkStatus(sleepSecs=0.2)
    assert execution.isSucceeded(), [(e.code, e.text) for e in execution.errors]
    ogc = requests.get(f"{client['api']}/jobs/{job_id}", timeout=30).json()
    assert ogc["status"] == "successful" and ogc["processID"] == "wps-echo"
    _check_outputs(client, execution, "async", tmp_path)


def test_owslib_reads_wps_errors(client: dict[str, Any]):
    from owslib.util import ServiceException

    with pytest.raises(ServiceException, match="nope"):
        client["wps"].describeprocess("nope")
