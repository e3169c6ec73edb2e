"""Part 1 ETS: landing page, conformance, HTTP, process list, process, process
description, job list — one test per ETS ``@Test``, named after it."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conformance.ets import TIMEOUT_S, EchoProcess, send_async
from tests.ogc_schemas import validate

JSON = {"Accept": "application/json"}
P1_CORE = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"


def _get(url: str) -> requests.Response:
    return requests.get(url, headers=JSON, timeout=TIMEOUT_S)


# --- LandingPage.java -------------------------------------------------------------------


def test_landing_page_retrieval(root: str):
    """testLandingPageRetrieval (/conf/core/landingpage-op): GET / answers 200."""
    assert _get(f"{root}/").status_code == 200


def test_landing_page_validation(root: str):
    """testLandingPageValidation (/conf/core/landingpage-success): service-desc or
    service-doc, conformance and processes links; valid landingPage."""
    page = _get(f"{root}/").json()
    rels = {link["rel"] for link in page["links"]}
    assert "service-desc" in rels or "service-doc" in rels, rels
    assert {"http://www.opengis.net/def/rel/ogc/1.0/conformance", "conformance"} & rels
    assert {"http://www.opengis.net/def/rel/ogc/1.0/processes", "processes"} & rels
    validate(page, "landingPage")


# --- Conformance.java, GeneralHttp.java ------------------------------------------------


def test_validate_conformance_operation_and_response(root: str):
    """testValidateConformanceOperationAndResponse (/conf/core/conformance-success)."""
    response = _get(f"{root}/conformance")
    assert response.status_code == 200
    validate(response.json(), "confClasses")
    assert all(isinstance(c, str) for c in response.json()["conformsTo"])
    assert P1_CORE in response.json()["conformsTo"]


def test_http(root: str):
    """testHttp (/req/core/http): GET / over HTTP/1.1."""
    response = requests.get(f"{root}/", timeout=TIMEOUT_S)
    assert response.raw.version == 11


# --- ProcessList.java -------------------------------------------------------------------


def test_pl_limit_definition(root: str):
    """testPlLimitDefinition (/req/core/pl-limit-definition): ``?limit=10`` is a valid
    query of getProcesses (the ETS validates the query against the OpenAPI document;
    here: the server takes it and answers a process list)."""
    response = _get(f"{root}/processes?limit=10")
    assert response.status_code == 200
    validate(response.json(), "processList")


def test_pl_limit_response(root: str, engine):
    """testPlLimitResponse (/req/core/pl-limit-response): ``?limit=1`` lists exactly one
    process (with two deployed: the built-in echo and one more)."""
    from tests.support import deploy_cwl, sleep_cwl

    deploy_cwl(root, sleep_cwl("pl-limit", "0"))
    processes = _get(f"{root}/processes?limit=1").json()["processes"]
    assert len(processes) == 1, processes


def test_pl_links(root: str):
    """testPlLinks (/req/core/pl-links): the list with ``?limit=1`` has links; beyond the
    ETS (which only checks that there are some), a ``next`` link leads to the rest."""
    document = _get(f"{root}/processes?limit=1").json()
    assert isinstance(document["links"], list)
    if len(_get(f"{root}/processes").json()["processes"]) > 1:
        following = next(link["href"] for link in document["links"] if link["rel"] == "next")
        assert len(_get(following).json()["processes"]) == 1


def test_process_list(root: str):
    """testProcessList (/req/core/process-list): at least one process."""
    assert len(_get(f"{root}/processes").json()["processes"]) > 0


def test_process_list_success(root: str):
    """testProcessListSuccess (/req/core/process-list-success): a valid processList."""
    response = _get(f"{root}/processes")
    assert response.status_code == 200
    validate(response.json(), "processList")


# --- Process.java -------------------------------------------------------------------------


def test_process_exception_no_such_process(root: str):
    """testProcessExceptionNoSuchProcess: 404 with an exception of the OpenAPI's 404."""
    response = _get(f"{root}/processes/invalid-process-{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    validate(response.json(), "exception")
    assert response.json()["type"].endswith("/no-such-process")


@pytest.mark.parametrize("requirement", ["process", "process-success"])
def test_process(root: str, echo: EchoProcess, requirement: str):
    """testProcess and testProcessSuccess (/req/core/process, process-success): the echo
    process's description is a valid process document."""
    response = _get(f"{root}/processes/{echo.process_id}")
    assert response.status_code == 200
    validate(response.json(), "process")


# --- OGCProcessDescription.java -------------------------------------------------------


def test_ogc_process_description_json(root: str, echo: EchoProcess):
    """testOGCProcessDescriptionJSON: the echo description validates."""
    validate(_get(f"{root}/processes/{echo.process_id}").json(), "process")


@pytest.mark.parametrize("part", ["inputs", "outputs"])
def test_ogc_process_description_inputs_outputs_def(echo: EchoProcess, part: str):
    """testOGCProcessDescriptionInputsDef / OutputsDef: the description has the field."""
    assert part in echo.description


@pytest.mark.parametrize("part", ["inputs", "outputs"])
def test_ogc_process_description_input_output_def(echo: EchoProcess, part: str):
    """testOGCProcessDescriptionInputDef / OutputDef: every one has a ``schema``."""
    assert all("schema" in spec for spec in echo.description[part].values())


@pytest.mark.parametrize("part", ["inputs", "outputs"])
def test_ogc_process_description_mixed_type(echo: EchoProcess, part: str):
    """testOGCProcessDescription{Input,Output}DefinitionOfMixedType: one schema has
    ``oneOf`` (the ETS skips otherwise; echo has one, so it is tested)."""
    assert any("oneOf" in spec["schema"] for spec in echo.description[part].values())


# --- JobList.java ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def a_job(root: str, echo: EchoProcess) -> str:
    """The ETS runs JobList after Jobs: there are jobs. Here: one async echo job."""
    return send_async(echo.execute_url, echo.body()).headers["Location"]


def test_job_list(root: str, a_job: str):
    """testJobList (/req/job-list/job-list-op): at least one job listed."""
    assert len(_get(f"{root}/jobs").json()["jobs"]) > 0


def test_job_list_success(root: str, a_job: str):
    """testJobListSuccess (/req/job-list/job-list-success): a valid jobList."""
    response = _get(f"{root}/jobs")
    assert response.status_code == 200
    validate(response.json(), "jobList")


# --- beyond the ETS: what the tutorials and clients do -----------------------------------


def test_trailing_slashes_are_served(root: str):
    """``POST …/processes/`` (EOEPCA's tutorials, plain curl) deploys: no empty 307."""
    from tests.support import sleep_cwl

    response = requests.post(
        f"{root}/processes/",
        data=sleep_cwl("slash", "0"),
        headers={"Content-Type": "application/cwl+yaml"},
        allow_redirects=False,
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 201, response.text
    for url in (f"{root}/processes/", f"{root}/processes/slash/", f"{root}/jobs/"):
        assert _get(url).status_code == 200, url
    assert requests.delete(f"{root}/processes/slash/", timeout=30).status_code == 204


def test_process_list_pages_back_and_forth(root: str):
    """``limit``/``offset`` with ``next`` and ``prev`` links, like the job list."""
    from tests.support import deploy_cwl, sleep_cwl

    deploy_cwl(root, sleep_cwl("pages", "0"))
    everything = [p["id"] for p in _get(f"{root}/processes").json()["processes"]]
    assert len(everything) >= 2
    first = _get(f"{root}/processes?limit=1").json()
    second = _get(next(li["href"] for li in first["links"] if li["rel"] == "next")).json()
    back = _get(next(li["href"] for li in second["links"] if li["rel"] == "prev")).json()
    assert [first["processes"][0]["id"], second["processes"][0]["id"]] == everything[:2]
    assert back["processes"] == first["processes"]
    bad = _get(f"{root}/processes?limit=0")
    assert bad.status_code == 400
    validate(bad.json(), "exception")
