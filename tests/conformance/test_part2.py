"""Part 2 ETS (``ets-ogcapi-processes10-part2``): its 15 tests, one per ``@Test``, in the
order of its testng.xml (conformance, general, dru, cwl, ogcapppkg, docker), with its
own requests and pass conditions. Lines cited are of ``src/main/java/org/opengis/cite/
ogcapiprocesses10part2/``."""

from __future__ import annotations

import json

import pytest
import requests

from tests import reference
from tests.support import deploy_cwl, sleep_cwl

P2 = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"
DRU = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/deploy-replace-undeploy"
JSON = {"Accept": "application/json"}
TIMEOUT_S = 120.0

# The package the suite deploys by URL (``urlAppPkg``): any CWL the server runs.
APP_PACKAGE = sleep_cwl("ets-app", "0")


@pytest.fixture(scope="module")
def app_package_url(file_server) -> str:
    """``SuiteAttribute.URL_APP_PKG``: the CWL, served over HTTP."""
    return file_server.add("ets-app.cwl", APP_PACKAGE)


# --- conformance/Conformance.java, general/GeneralHttp.java ----------------------------


def test_validate_conformance_operation_and_response(root: str):
    """testValidateConformanceOperationAndResponse: 200, valid, DRU declared."""
    from tests.ogc_schemas import validate

    response = requests.get(f"{root}/conformance", headers=JSON, timeout=TIMEOUT_S)
    assert response.status_code == 200
    validate(response.json(), "confClasses")
    assert DRU in response.json()["conformsTo"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/processes"),
        ("PUT", "/processes/not-existing-process"),
        ("DELETE", "/processes/not-existing-process"),
    ],
)
def test_http_processes_dru_ops(root: str, method: str, path: str):
    """testHttpProcesses{PostDeploy,PutReplace,DeleteUndeploy}Op (GeneralHttp.java:37,
    61, 86): an HTTP/1.1 answer that is not 405 (no body, no Content-Type)."""
    response = requests.request(method, f"{root}{path}", timeout=TIMEOUT_S)
    assert response.raw.version == 11
    assert response.status_code != 405


# --- dru/Default.java -------------------------------------------------------------------


def test_processes_immutable(root: str):
    """testProcessesImmutable (dru/Default.java:139): every listed process has a boolean
    ``mutable``. (The suite would also check the landing page's processes link, but it
    compares the rel with Java's ``==`` (dru/Default.java:98), never true: it checks the
    same list; here the landing page's link is followed as it means to.)"""
    listed = requests.get(f"{root}/processes", headers=JSON, timeout=TIMEOUT_S).json()
    assert listed["processes"]
    assert all(isinstance(p["mutable"], bool) for p in listed["processes"])
    landing = requests.get(f"{root}/", headers=JSON, timeout=TIMEOUT_S).json()
    href = next(
        link["href"]
        for link in landing["links"]
        if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/processes"
    )
    again = requests.get(href, headers=JSON, timeout=TIMEOUT_S).json()
    assert all(isinstance(p["mutable"], bool) for p in again["processes"])


@pytest.mark.parametrize("method, path", [("POST", "/processes"), ("PUT", "/processes/echo")])
def test_unsupported_content_type(root: str, method: str, path: str):
    """testPostUnsupportedContentType / testPutUnsupportedContentType (dru/Default.java:
    190, 214): ``Content-Type: text/plain`` → 415, type ``unsupported-media-type``
    (dru/Default.java:57; the PUT to the echo process, which is immutable: the media
    type is checked first)."""
    headers = {**JSON, "Content-Type": "text/plain"}
    response = requests.request(method, f"{root}{path}", headers=headers, timeout=TIMEOUT_S)
    assert response.status_code == 415
    assert response.json()["type"] == f"{P2}/unsupported-media-type"


def _fetch_deployable_process(root: str, mutable: bool) -> str | None:
    """``fetchDeployableProcess``: the first listed process with that ``mutable``."""
    listed = requests.get(f"{root}/processes", headers=JSON, timeout=TIMEOUT_S).json()
    return next((p["id"] for p in listed["processes"] if p["mutable"] == mutable), None)


def test_undeploy_response(root: str):
    """testUndeployResponse (dru/Default.java:267): DELETE of a mutable process → 204.
    The suite takes the first mutable process it lists; one is deployed first (in the
    suite's runs, an earlier test's)."""
    deploy_cwl(root, sleep_cwl("ets-mutable", "0"))
    process_id = _fetch_deployable_process(root, True)
    assert process_id is not None
    response = requests.delete(f"{root}/processes/{process_id}", headers=JSON, timeout=30)
    assert response.status_code == 204


def test_undeploy_response_immutable(root: str):
    """testUndeployResponseImmutable (dru/Default.java:298): DELETE of an immutable
    process (the built-in echo) → 403, type ``immutable-process``."""
    process_id = _fetch_deployable_process(root, False)
    assert process_id == "echo"
    response = requests.delete(f"{root}/processes/{process_id}", headers=JSON, timeout=30)
    assert response.status_code == 403
    assert response.json()["type"] == f"{P2}/immutable-process"


# --- cwl/Default.java, ogcapppkg/Default.java --------------------------------------------


def _deploy_twice(root: str, content_type: str, body: str) -> str:
    """testProcessDeploy: 201/202 with one Location; the same again → 409 with type
    ``duplicated-process``. The process id from Location (split at ``/processes/``)."""
    headers = {**JSON, "Content-Type": content_type}
    response = requests.post(f"{root}/processes", data=body, headers=headers, timeout=TIMEOUT_S)
    assert response.status_code in (201, 202), response.text
    process_id = response.headers["Location"].split("/processes/")[1]
    again = requests.post(f"{root}/processes", data=body, headers=headers, timeout=TIMEOUT_S)
    assert again.status_code == 409
    assert again.json()["type"] == f"{P2}/duplicated-process"
    return process_id


def _replace_and_delete(root: str, process_id: str, content_type: str, body: str) -> None:
    """testProcessReplace: PUT → 204; then the suite deletes the process."""
    headers = {**JSON, "Content-Type": content_type}
    url = f"{root}/processes/{process_id}"
    response = requests.put(url, data=body, headers=headers, timeout=TIMEOUT_S)
    assert response.status_code == 204, response.text
    requests.delete(url, timeout=TIMEOUT_S)


def test_cwl_process_deploy_and_replace(root: str, app_package_url: str):
    """cwl testProcessDeploy + testProcessReplace (cwl/Default.java:106, 151; the second
    depends on the first): the package fetched from its URL, sent as
    ``application/cwl+yaml``."""
    text = requests.get(app_package_url, timeout=TIMEOUT_S).text
    process_id = _deploy_twice(root, "application/cwl+yaml", text)
    assert process_id == "ets-app"
    _replace_and_delete(root, process_id, "application/cwl+yaml", text)


def test_cwl_process_replace(root: str, app_package_url: str):
    """cwl testProcessReplace on its own: deploy, PUT → 204."""
    text = requests.get(app_package_url, timeout=TIMEOUT_S).text
    process_id = _deploy_twice(root, "application/cwl+yaml", text)
    _replace_and_delete(root, process_id, "application/cwl+yaml", text)
    assert requests.get(f"{root}/processes/{process_id}", timeout=30).status_code == 404


def test_ogcapppkg_process_deploy(root: str, app_package_url: str):
    """ogcapppkg testProcessDeploy (ogcapppkg/Default.java:110): ``{"executionUnit":
    {"href": <url>, "type": "application/cwl"}}`` as ``application/ogcapppkg+json`` →
    201/202, again → validateDuplicatedProcess (CommonFixture.java:714)."""
    body = json.dumps({"executionUnit": {"href": app_package_url, "type": "application/cwl"}})
    process_id = _deploy_twice(root, "application/ogcapppkg+json", body)
    requests.delete(f"{root}/processes/{process_id}", timeout=TIMEOUT_S)


def test_ogcapppkg_process_replace(root: str, app_package_url: str):
    """ogcapppkg testProcessReplace (ogcapppkg/Default.java:153): PUT → 204."""
    body = json.dumps({"executionUnit": {"href": app_package_url, "type": "application/cwl"}})
    process_id = _deploy_twice(root, "application/ogcapppkg+json", body)
    _replace_and_delete(root, process_id, "application/ogcapppkg+json", body)


# --- docker/Default.java ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["testProcessDeploy", "testProcessReplace"])
def test_docker_package_is_refused_with_a_reason(root: str, name: str):
    """docker testProcessDeploy / testProcessReplace (docker/Default.java:115, 160) deploy
    the suite's ``ogcapppkg.json`` (BandMath, ``executionUnit`` ``{"type": "docker"}``),
    read from a fixed path of the suite's own machine (docker/Default.java:87). They
    test the Docker requirement class, which this server does not declare: it runs CWL
    application packages only. The standard's requirement here (Part 2, /req/ogcapppkg/
    execution-unit): a package the server cannot run is refused with an exception that
    says why, and nothing is deployed."""
    assert not any(
        "/conf/docker" in c
        for c in requests.get(f"{root}/conformance", timeout=30).json()["conformsTo"]
    )
    # The suite's own file, from the reference folder (the test skips without it).
    package = reference.ogc_schemas() / "ets-ogcapi-processes10-part2" / "ogcapppkg.json"
    headers = {**JSON, "Content-Type": "application/ogcapppkg+json"}
    response = requests.post(
        f"{root}/processes", data=package.read_bytes(), headers=headers, timeout=TIMEOUT_S
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]
    assert requests.get(f"{root}/processes/BandMath", timeout=30).status_code == 404


# --- beyond the ETS ------------------------------------------------------------------------


def test_echo_cannot_be_replaced(root: str):
    """Replacing an immutable process → 403 ``immutable-process`` (a valid package)."""
    headers = {**JSON, "Content-Type": "application/cwl+yaml"}
    response = requests.put(
        f"{root}/processes/echo", data=sleep_cwl("echo", "0"), headers=headers, timeout=60
    )
    assert response.status_code == 403
    assert response.json()["type"] == f"{P2}/immutable-process"


def test_a_users_own_echo_takes_the_builtins_place(engine):
    """A user who deploys an ``echo`` of their own has it (mutable); undeployed, the
    built-in is back."""
    import uuid

    api = engine.api(f"own-echo-{uuid.uuid4().hex[:6]}")
    assert requests.get(f"{api}/processes/echo", timeout=60).json()["mutable"] is False
    deploy_cwl(api, sleep_cwl("echo", "0"))
    mine = requests.get(f"{api}/processes/echo", timeout=60).json()
    assert mine["mutable"] is True and mine["title"] == "Sleeper"
    assert requests.delete(f"{api}/processes/echo", timeout=60).status_code == 204
    assert requests.get(f"{api}/processes/echo", timeout=60).json()["mutable"] is False
