"""Landing page, conformance, the API definition, Swagger UI and the HTML pages."""

from __future__ import annotations

import pytest
import requests
from openapi_spec_validator import OpenAPIV30SpecValidator

from tests.conftest import Engine
from tests.ogc_schemas import validate
from tests.support import ECHO_CWL, assert_ogc_exception, deploy_cwl, execute_async, wait_for_status

P1_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
P2_CONF = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf"
CONFORMANCE = {
    f"{P1_CONF}/core",
    f"{P1_CONF}/ogc-process-description",
    f"{P1_CONF}/json",
    f"{P1_CONF}/html",
    f"{P1_CONF}/oas30",
    f"{P1_CONF}/job-list",
    f"{P1_CONF}/dismiss",
    f"{P1_CONF}/callback",
    f"{P2_CONF}/deploy-replace-undeploy",
    f"{P2_CONF}/ogcapppkg",
    f"{P2_CONF}/cwl",
}
REL = "http://www.opengis.net/def/rel/ogc/1.0"


@pytest.mark.parametrize("prefixed", [True, False], ids=["user", "unprefixed"])
def test_landing_page(engine: Engine, user: str, prefixed: bool):
    api = engine.api(user if prefixed else None)
    response = requests.get(f"{api}/", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    landing = response.json()
    validate(landing, "landingPage")
    links = {link["rel"]: link["href"] for link in landing["links"]}
    assert links[f"{REL}/conformance"] == f"{api}/conformance"
    assert links[f"{REL}/processes"] == f"{api}/processes"
    assert links[f"{REL}/job-list"] == f"{api}/jobs"
    assert links["service-doc"] == f"{engine.url}/swagger-ui/oapip/"
    # Every advertised link answers.
    for rel in (f"{REL}/conformance", f"{REL}/processes", f"{REL}/job-list", "service-desc"):
        assert requests.get(links[rel], timeout=30).status_code == 200, rel
    wps = [link for link in landing["links"] if link.get("type") == "text/xml"]
    wps_url = api.removesuffix("/ogc-api") + "/wps"
    assert [link["href"].split("?")[0] for link in wps] == [wps_url, wps_url]
    for link in wps:
        capabilities = requests.get(link["href"], timeout=30)
        assert capabilities.status_code == 200, capabilities.text
        assert b"Capabilities" in capabilities.content


@pytest.mark.parametrize("prefixed", [True, False], ids=["user", "unprefixed"])
def test_conformance_is_exactly_the_published_uris(engine: Engine, user: str, prefixed: bool):
    response = requests.get(f"{engine.api(user if prefixed else None)}/conformance", timeout=30)
    assert response.status_code == 200
    document = response.json()
    validate(document, "confClasses")
    assert set(document["conformsTo"]) == CONFORMANCE
    assert len(document["conformsTo"]) == len(CONFORMANCE)


def test_api_is_an_openapi_30_document(api: str):
    response = requests.get(f"{api}/api", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    document = response.json()
    assert document["openapi"].startswith("3.0."), document["openapi"]
    errors = [e.message for e in OpenAPIV30SpecValidator(document).iter_errors()]
    assert errors == [], errors[:5]
    paths = set(document["paths"])
    for path in (
        "/processes",
        "/processes/{processId}",
        "/processes/{processId}/execution",
        "/processes/{processId}/package",
        "/jobs",
        "/jobs/{jobId}",
        "/jobs/{jobId}/results",
        "/jobs/{jobId}/logs",
        "/processes/{processId}/schedules",
        "/processes/{processId}/schedules/{scheduleId}",
        "/conformance",
    ):
        assert f"/{{user}}/ogc-api{path}" in paths, path
        assert f"/ogc-api{path}" in paths, path
    for path in ("/wps", "/wps/jobs/{jobId}"):
        assert f"/{{user}}{path}" in paths and path in paths, path
    assert {"get", "post"} <= set(document["paths"]["/{user}/wps"])
    operations = document["paths"]["/{user}/ogc-api/processes"]
    assert {"get", "post"} <= set(operations)
    assert "application/ogcapppkg+json" in operations["post"]["requestBody"]["content"]


def test_swagger_ui(engine: Engine):
    response = requests.get(f"{engine.url}/swagger-ui/oapip/", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text.lower()
    # It loads this server's own definition.
    assert "/openapi.json" in response.text or "/api" in response.text
    assert requests.get(f"{engine.url}/openapi.json", timeout=30).status_code == 200


def _html(url: str, how: str) -> str:
    if how == "f":
        response = requests.get(url, params={"f": "html"}, timeout=30)
    else:
        response = requests.get(
            url, headers={"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}, timeout=30
        )
    assert response.status_code == 200, (url, response.text[:500])
    assert response.headers["content-type"].startswith("text/html"), url
    assert "<html" in response.text.lower(), url
    return response.text


@pytest.mark.parametrize("how", ["f", "accept"])
def test_html_pages(api: str, how: str):
    deploy_cwl(api, ECHO_CWL)
    created = execute_async(api, "echo", {"message": "page"})
    job = wait_for_status(created.headers["Location"], timeout=60)
    job_url = created.headers["Location"]

    assert "processes" in _html(f"{api}/", how).lower()
    assert "echo" in _html(f"{api}/processes", how)
    page = _html(f"{api}/processes/echo", how)
    assert "message" in page  # the input
    assert "said" in page  # the output
    assert job["jobID"] in _html(f"{api}/jobs", how)
    page = _html(job_url, how)
    assert job["jobID"] in page and "successful" in page
    assert "said" in _html(f"{job_url}/results", how)
    assert "core" in _html(f"{api}/conformance", how)


def test_json_is_the_default_and_f_json_wins(api: str):
    response = requests.get(f"{api}/processes", timeout=30)
    assert response.headers["content-type"] == "application/json"
    response = requests.get(
        f"{api}/processes", params={"f": "json"}, headers={"Accept": "text/html"}, timeout=30
    )
    assert response.headers["content-type"] == "application/json"
    validate(response.json(), "processList")


def test_html_escapes_what_users_wrote(api: str):
    hostile = ECHO_CWL.replace("label: Echo", "label: \"<script>alert('x')</script>\"")
    deploy_cwl(api, hostile)
    page = _html(f"{api}/processes/echo", "f")
    assert "<script>alert(" not in page
    assert "&lt;script&gt;" in page


def test_unknown_path_and_method_are_ogc_exceptions(api: str):
    assert_ogc_exception(requests.get(f"{api}/nothing-here", timeout=30), 404)
    assert_ogc_exception(requests.patch(f"{api}/processes", timeout=30), 405)


@pytest.mark.parametrize("name", ["bad user", "a" * 80, ".hidden"])
def test_invalid_user_names_are_refused(engine: Engine, name: str):
    response = requests.get(f"{engine.url}/{name}/ogc-api/processes", timeout=30)
    assert_ogc_exception(response, 400)
