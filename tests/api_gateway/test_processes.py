"""Part 2 Deploy, Replace, Undeploy: media types, status codes, ``?w=``, the package.

Every process and error document is validated against the OGC schemas.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import requests
import yaml

from core.times import parse_time
from tests.conftest import BOTH_ENGINES, MAX_REQUEST_BYTES, Engine, FileServer
from tests.ogc_schemas import validate
from tests.support import (
    ECHO_CWL,
    P1_EXC,
    P2_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    poll,
    result_bytes,
    wait_for_status,
)

WATER_BODIES = "app-water-bodies-cloud-native.1.5.0.cwl"  # in the app_packages folder
CONVERT_URL = "convert-url-app.cwl"


def _bodies(file_server: FileServer, app_packages: Path) -> dict[str, tuple[str, bytes]]:
    """Deploy requests of the convert-url package, one per way of sending it."""
    text = (app_packages / CONVERT_URL).read_text()
    as_json = json.dumps(yaml.safe_load(text))
    href = f"{file_server.url}/{CONVERT_URL}"

    def package(unit: dict) -> bytes:
        return json.dumps({"executionUnit": unit}).encode()

    return {
        "cwl": ("application/cwl", text.encode()),
        "cwl+yaml": ("application/cwl+yaml", text.encode()),
        "cwl+json": ("application/cwl+json", as_json.encode()),
        "ogcapppkg-href": (
            "application/ogcapppkg+json",
            package({"href": href, "type": "application/cwl"}),
        ),
        "ogcapppkg-value-object": (
            "application/ogcapppkg+json",
            package({"value": json.loads(as_json), "mediaType": "application/cwl+json"}),
        ),
        "ogcapppkg-value-yaml": (
            "application/ogcapppkg+json",
            package({"value": text, "mediaType": "application/cwl+yaml"}),
        ),
    }


@pytest.mark.parametrize(
    "way",
    [
        "cwl",
        "cwl+yaml",
        "cwl+json",
        "ogcapppkg-href",
        "ogcapppkg-value-object",
        "ogcapppkg-value-yaml",
    ],
)
def test_deploy_each_media_type(app_packages: Path, api: str, file_server: FileServer, way: str):
    media_type, body = _bodies(file_server, app_packages)[way]
    response = requests.post(
        f"{api}/processes", data=body, headers={"Content-Type": media_type}, timeout=60
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{api}/processes/convert-url"
    summary = response.json()
    validate(summary, "processSummary")
    assert summary["id"] == "convert-url"
    assert summary["mutable"] is True

    description = requests.get(response.headers["Location"], timeout=30).json()
    validate(description, "process")
    assert description["title"] == "convert url app"
    assert description["version"] == "0.1.2"
    assert set(description["inputs"]) == {"fn", "url", "size"}
    assert description["inputs"]["size"]["schema"] == {"type": "string", "default": "50%"}
    assert description["inputs"]["size"]["minOccurs"] == 0
    assert set(description["outputs"]) == {"converted_image"}


def test_process_list_summaries_are_mutable(api: str):
    for text in (ECHO_CWL, ECHO_CWL.replace("id: echo", "id: echo-two")):
        deploy_cwl(api, text)
    listing = requests.get(f"{api}/processes", timeout=30).json()
    validate(listing, "processList")
    assert [p["id"] for p in listing["processes"]] == ["echo", "echo-two"]
    for summary in listing["processes"]:
        validate(summary, "processSummary")
        assert summary["mutable"] is True
        assert "inputs" not in summary
    description = requests.get(f"{api}/processes/echo", timeout=30).json()
    assert description["mutable"] is True


def test_deploy_twice_is_409_duplicated_process(api: str):
    deploy_cwl(api, ECHO_CWL)
    again = requests.post(
        f"{api}/processes",
        data=ECHO_CWL,
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    assert_ogc_exception(again, 409, f"{P2_EXC}/duplicated-process")


@pytest.mark.parametrize("media_type", ["text/plain", "application/xml", None])
def test_deploy_unsupported_media_type_is_415(api: str, media_type: str | None):
    headers = {"Content-Type": media_type} if media_type else {}
    response = requests.post(
        f"{api}/processes", data=ECHO_CWL.encode(), headers=headers, timeout=30
    )
    assert_ogc_exception(response, 415)
    assert _own_processes(api) == []


def test_replace_unsupported_media_type_beats_unknown_process(api: str):
    response = requests.put(
        f"{api}/processes/no-such-thing",
        data=ECHO_CWL.encode(),
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert_ogc_exception(response, 415)
    # With a media type we read, the missing process is what is wrong.
    response = requests.put(
        f"{api}/processes/no-such-thing",
        data=ECHO_CWL.encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    assert_ogc_exception(response, 404, f"{P1_EXC}/no-such-process")


@BOTH_ENGINES
def test_replace_changes_description_and_what_runs(any_engine: Engine, user: str):
    api = any_engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    first = requests.post(
        f"{api}/processes/echo/execution", json={"inputs": {"message": "one"}}, timeout=90
    )
    assert first.status_code == 200, first.text

    replacement = (
        ECHO_CWL.replace("label: Echo", "label: Echo, louder")
        .replace("baseCommand: echo", "baseCommand: [echo, LOUD]")
        .replace("cwlVersion: v1.2", "cwlVersion: v1.2\n$namespaces: {s: https://schema.org/}")
        + "s:softwareVersion: 2.0.0\n"
    )
    response = requests.put(
        f"{api}/processes/echo",
        data=replacement.encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    description = requests.get(f"{api}/processes/echo", timeout=30).json()
    validate(description, "process")
    assert description["title"] == "Echo, louder"
    assert description["version"] == "2.0.0"

    # The next job runs the new package.
    second = requests.post(
        f"{api}/processes/echo/execution",
        json={"inputs": {"message": "two"}, "response": "document"},
        timeout=90,
    )
    assert second.status_code == 200, second.text
    said = second.json()["said"]["href"]
    assert requests.get(f"{api}/processes/echo/package", timeout=30).status_code == 200
    assert result_bytes(said) == b"LOUD two\n"


def test_replace_with_another_process_id_is_refused(api: str):
    deploy_cwl(api, ECHO_CWL)
    response = requests.put(
        f"{api}/processes/echo",
        data=ECHO_CWL.replace("id: echo", "id: other").encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    assert_ogc_exception(response, 400)
    assert requests.get(f"{api}/processes/echo", timeout=30).json()["id"] == "echo"
    assert requests.get(f"{api}/processes/other", timeout=30).status_code == 404


def _own_processes(api: str) -> list[str]:
    """The user's own processes: the list without the built-in ones (echo)."""
    listed = requests.get(f"{api}/processes", timeout=30).json()["processes"]
    return [p["id"] for p in listed if p["mutable"]]


@BOTH_ENGINES
def test_undeploy(any_engine: Engine, user: str):
    api = any_engine.api(user)
    # Not `echo`: undeploying one's own echo brings the built-in back.
    deploy_cwl(api, ECHO_CWL.replace("id: echo", "id: gone"))
    response = requests.delete(f"{api}/processes/gone", timeout=30)
    assert response.status_code == 204
    assert response.content == b""
    for method, url in (
        ("GET", f"{api}/processes/gone"),
        ("GET", f"{api}/processes/gone/package"),
        ("DELETE", f"{api}/processes/gone"),
        ("POST", f"{api}/processes/gone/execution"),
    ):
        body = {"inputs": {"message": "x"}} if method == "POST" else None
        gone = requests.request(method, url, json=body, timeout=30)
        assert_ogc_exception(gone, 404, f"{P1_EXC}/no-such-process")
    assert _own_processes(api) == []
    # The id is free again.
    deploy_cwl(api, ECHO_CWL.replace("id: echo", "id: gone"))


def test_w_selects_the_workflow_of_a_graph(app_packages: Path, api: str):
    text = (app_packages / WATER_BODIES).read_bytes()
    headers = {"Content-Type": "application/cwl+yaml"}
    root = requests.post(f"{api}/processes", data=text, headers=headers, timeout=60)
    assert root.status_code == 201, root.text
    assert root.json()["id"] == "water_bodies"
    assert root.headers["Location"] == f"{api}/processes/water_bodies"

    sub = requests.post(
        f"{api}/processes",
        params={"w": "detect_water_body"},
        data=text,
        headers=headers,
        timeout=60,
    )
    assert sub.status_code == 201, sub.text
    assert sub.json()["id"] == "detect_water_body"
    assert sub.headers["Location"] == f"{api}/processes/detect_water_body"

    whole = requests.get(f"{api}/processes/water_bodies", timeout=30).json()
    part = requests.get(f"{api}/processes/detect_water_body", timeout=30).json()
    validate(whole, "process")
    validate(part, "process")
    assert set(whole["inputs"]) == {"aoi", "epsg", "stac_items", "bands"}
    assert set(whole["outputs"]) == {"stac_catalog"}
    assert set(part["inputs"]) == {"aoi", "epsg", "bands", "item"}
    assert set(part["outputs"]) == {"detected_water_body"}

    unknown = requests.post(
        f"{api}/processes",
        params={"w": "no_such_workflow"},
        data=text,
        headers=headers,
        timeout=60,
    )
    body = assert_ogc_exception(unknown, 400)
    assert "no_such_workflow" in body["detail"]


def test_package_returns_the_cwl_as_deployed(
    app_packages: Path, engine: Engine, api: str, user: str
):
    text = (app_packages / CONVERT_URL).read_text()
    deploy_cwl(api, text, media_type="application/cwl")
    response = requests.get(f"{api}/processes/convert-url/package", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/cwl+json")
    package = response.json()
    assert package == yaml.safe_load(text)

    # What GET /package gives deploys as the same process elsewhere.
    elsewhere = engine.api(f"{user}-copy")
    copied = requests.post(
        f"{elsewhere}/processes",
        data=response.content,
        headers={"Content-Type": "application/cwl+json"},
        timeout=60,
    )
    assert copied.status_code == 201, copied.text
    original = requests.get(f"{api}/processes/convert-url", timeout=30).json()
    copy = requests.get(f"{elsewhere}/processes/convert-url", timeout=30).json()
    for key in ("id", "title", "description", "version", "inputs", "outputs"):
        assert copy[key] == original[key], key


def test_invalid_cwl_is_400_with_the_validators_message(api: str):
    broken = ECHO_CWL.replace("type: string", "type: strang")
    response = requests.post(
        f"{api}/processes",
        data=broken.encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    body = assert_ogc_exception(response, 400)
    assert "strang" in body["detail"], body
    assert _own_processes(api) == []


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        ("application/ogcapppkg+json", b'{"executionUnit": {"href": '),
        ("application/cwl+json", b"{not json"),
        ("application/cwl+yaml", b"cwlVersion: v1.2\nclass: [unclosed"),
        ("application/ogcapppkg+json", b'{"processDescription": {}}'),
    ],
    ids=["truncated-json", "cwl-json-not-json", "cwl-yaml-not-yaml", "no-execution-unit"],
)
def test_malformed_deploy_body_is_400(api: str, media_type: str, body: bytes):
    response = requests.post(
        f"{api}/processes", data=body, headers={"Content-Type": media_type}, timeout=30
    )
    assert_ogc_exception(response, 400)


@pytest.mark.parametrize("days", ["7", 0, -1.5, 36501, float("inf"), True, [7], {"days": 7}])
def test_deploy_refuses_a_job_retention_that_is_not_a_positive_number(api: str, days: object):
    response = requests.post(
        f"{api}/processes",
        data=json.dumps({"executionUnit": {"value": ECHO_CWL}, "jobRetentionDays": days}),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=30,
    )
    body = assert_ogc_exception(response, 400, f"{P1_EXC}/invalid-parameter")
    assert "jobRetentionDays must be a positive number of days" in body["detail"], body
    assert _own_processes(api) == []


def test_a_job_retention_is_carried_onto_every_run_of_the_process(engine: Engine, user: str):
    """With no site-wide retention any positive ``jobRetentionDays`` is allowed. It is a
    tag of the process's deployment, which Prefect copies onto each run it creates from
    it: the gateway's (through the outbox) and one started as the Prefect UI starts one
    (with no tags of its own): both jobs' statuses say when their results expire."""
    api = engine.api(user)
    response = requests.post(
        f"{api}/processes",
        data=json.dumps({"executionUnit": {"value": ECHO_CWL}, "jobRetentionDays": 36500}),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    prefect, auth = engine.prefect_api_url, engine.prefect_auth
    deployment = requests.get(
        f"{prefect}/deployments/name/ogc-execute/echo@{user}", auth=auth, timeout=30
    ).json()
    assert {"own-retention", "retention:3153600000s"} <= set(deployment["tags"])

    created = execute_async(api, "echo", {"message": "through the OGC API"})
    assert created.status_code == 201, created.text
    by_api = wait_for_status(created.headers["Location"])

    def from_the_ui() -> requests.Response | None:
        run = requests.post(
            f"{prefect}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": {"inputs": {"message": "from the Prefect UI"}}},
            auth=auth,
            timeout=30,
        )
        return None if run.status_code == 503 else run  # SQLite busy: again

    run = poll(from_the_ui, timeout=60, interval=0.5, what="a run created")
    assert run.status_code == 201, run.text
    assert "retention:3153600000s" in run.json()["tags"]
    by_ui = wait_for_status(f"{api}/jobs/{run.json()['id']}")

    for status in (by_api, by_ui):
        assert status["status"] == "successful", status
        kept = parse_time(status["expires"]) - parse_time(status["finished"])
        assert kept == dt.timedelta(days=36500), status


def test_unreachable_package_href_is_400(api: str, file_server: FileServer):
    unit = {"executionUnit": {"href": f"{file_server.url}/missing.cwl", "type": "application/cwl"}}
    response = requests.post(
        f"{api}/processes",
        json=unit,
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=30,
    )
    body = assert_ogc_exception(response, 400)
    assert "404" in body["detail"]


def test_over_large_body_is_413(api: str):
    body = b"#" * (MAX_REQUEST_BYTES + 1024 * 1024)
    for method, url, media_type in (
        ("POST", f"{api}/processes", "application/cwl+yaml"),
        ("POST", f"{api}/processes/echo/execution", "application/json"),
    ):
        response = requests.request(
            method, url, data=body, headers={"Content-Type": media_type}, timeout=60
        )
        assert_ogc_exception(response, 413)


def test_over_large_chunked_body_is_413(api: str):
    """No Content-Length: the limit holds while the body streams in."""

    def chunks():
        for _ in range(3):
            yield b"#" * (1024 * 1024)

    response = requests.post(
        f"{api}/processes",
        data=chunks(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=60,
    )
    assert_ogc_exception(response, 413)


def test_deploy_then_execute_by_job(api: str):
    """A deployed tool (no Workflow) runs asynchronously to a File result."""
    deploy_cwl(api, ECHO_CWL)
    created = requests.post(
        f"{api}/processes/echo/execution",
        json={"inputs": {"message": "hello"}},
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert created.status_code == 201
    final = wait_for_status(created.headers["Location"], timeout=60)
    assert final["status"] == "successful", final
