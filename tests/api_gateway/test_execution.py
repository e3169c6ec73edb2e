"""Part 1 execution: async and sync, headers, input validation, job and result errors."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from core.ogc import REL
from tests.conftest import BOTH_ENGINES, Engine
from tests.ogc_schemas import validate
from tests.support import (
    ECHO_CWL,
    FAILING_WORKFLOW_CWL,
    P1_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    result_bytes,
    sleep_cwl,
    wait_for_status,
)

RESULTS_REL = f"{REL}/results"


def _said(results: dict) -> str:
    return result_bytes(results["said"]["href"]).decode()


@BOTH_ENGINES
def test_async_execute_answers_201_location_and_preference_applied(any_engine: Engine, user: str):
    api = any_engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    response = execute_async(api, "echo", {"message": "hello"})
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "respond-async"
    status = response.json()
    validate(status, "statusInfo")
    assert status["status"] in ("accepted", "running", "successful")
    assert status["type"] == "process"
    assert status["processID"] == "echo"
    uuid.UUID(status["jobID"])
    # The bare job URL: no query, no /results, no fragment.
    assert response.headers["Location"] == f"{api}/jobs/{status['jobID']}"

    final = wait_for_status(response.headers["Location"], timeout=60)
    assert final["status"] == "successful", final
    assert any(link["href"] == f"{api}/jobs/{status['jobID']}/results" for link in final["links"])
    results = requests.get(f"{api}/jobs/{status['jobID']}/results", timeout=30)
    assert results.status_code == 200
    validate(results.json(), "results")
    assert _said(results.json()) == "hello\n"
    assert results.json()["said"]["type"] == "text/plain"


@BOTH_ENGINES
def test_execute_without_preference_is_synchronous(any_engine: Engine, user: str):
    """No ``response`` either: raw, the standard's default. The one output, a file, is
    its link: the body, and a ``Link`` header beside the job's monitor link."""
    api = any_engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    response = requests.post(
        f"{api}/processes/echo/execution", json={"inputs": {"message": "sync"}}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert "Preference-Applied" not in response.headers
    assert response.headers["content-type"] == "application/json"
    said = response.json()
    assert said["type"] == "text/plain"
    assert result_bytes(said["href"]) == b"sync\n"
    links = requests.utils.parse_header_links(response.headers["Link"])
    assert {(link["url"], link.get("title")) for link in links if link["rel"] == RESULTS_REL} == {
        (said["href"], "said")
    }
    job_url = next(link["url"] for link in links if link["rel"] == "monitor")
    # The job that produced it is listed and successful; its results answer the same.
    jobs = requests.get(f"{api}/jobs", timeout=30).json()
    assert [j["status"] for j in jobs["jobs"]] == ["successful"]
    assert requests.get(f"{job_url}/results", timeout=30).json() == said


def test_execute_asking_for_the_document(api: str):
    """``response: document``, synchronous and asynchronous: the results document, a
    member per output."""
    deploy_cwl(api, ECHO_CWL)
    response = requests.post(
        f"{api}/processes/echo/execution",
        json={"inputs": {"message": "doc"}, "response": "document"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    validate(response.json(), "results")
    assert _said(response.json()) == "doc\n"
    created = execute_async(api, "echo", {"message": "doc"}, response="document")
    assert wait_for_status(created.headers["Location"], timeout=60)["status"] == "successful"
    results = requests.get(f"{created.headers['Location']}/results", timeout=30).json()
    validate(results, "results")
    assert _said(results) == "doc\n"


def test_async_results_without_response_are_raw(api: str):
    """A job submitted without ``response``: ``/results`` is raw, the one file output's
    link as the body and a ``Link`` header."""
    deploy_cwl(api, ECHO_CWL)
    created = execute_async(api, "echo", {"message": "later"}, response=None)
    assert wait_for_status(created.headers["Location"], timeout=60)["status"] == "successful"
    results = requests.get(f"{created.headers['Location']}/results", timeout=30)
    assert results.status_code == 200
    said = results.json()
    assert "said" not in said
    assert result_bytes(said["href"]) == b"later\n"
    links = requests.utils.parse_header_links(results.headers["Link"])
    assert [(link["url"], link["rel"]) for link in links] == [(said["href"], RESULTS_REL)]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
    ids=["no-content-type", "text-plain", "form"],
)
def test_execute_reads_json_whatever_the_content_type(api: str, headers: dict[str, str]):
    deploy_cwl(api, ECHO_CWL)
    body = json.dumps({"inputs": {"message": "raw"}}).encode()
    response = requests.post(
        f"{api}/processes/echo/execution",
        data=body,
        headers={**headers, "Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    if not headers:
        assert "content-type" not in {k.lower() for k in response.request.headers}
    final = wait_for_status(response.headers["Location"], timeout=60)
    assert final["status"] == "successful", final


def test_prefer_header_with_other_preferences(api: str):
    deploy_cwl(api, ECHO_CWL)
    response = requests.post(
        f"{api}/processes/echo/execution",
        json={"inputs": {"message": "x"}},
        headers={"Prefer": "return=minimal, respond-async;wait=10"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "respond-async"


def test_unknown_process_is_404_no_such_process(api: str):
    for method, path in (
        ("GET", "/processes/nope"),
        ("POST", "/processes/nope/execution"),
        ("GET", "/processes/nope/package"),
        ("DELETE", "/processes/nope"),
    ):
        response = requests.request(method, api + path, json={"inputs": {}}, timeout=30)
        assert_ogc_exception(response, 404, f"{P1_EXC}/no-such-process")


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "42"])
def test_unknown_job_is_404_no_such_job(api: str, job_id: str):
    for method, path in (
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/results"),
        ("DELETE", f"/jobs/{job_id}"),
    ):
        response = requests.request(method, api + path, timeout=30)
        assert_ogc_exception(response, 404, f"{P1_EXC}/no-such-job")


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ({"message": 3}, ["message"]),
        ({"message": "x", "volume": 11}, ["volume"]),
        ({}, ["message"]),
        ({"message": ["a", "b"]}, ["message"]),
        ({"message": 1, "extra": True}, ["message", "extra"]),
    ],
    ids=["wrong-type", "unknown-input", "missing", "array-for-string", "two-at-once"],
)
def test_invalid_inputs_are_400_naming_the_input(api: str, inputs: dict, named: list[str]):
    deploy_cwl(api, ECHO_CWL)
    response = execute_async(api, "echo", inputs)
    body = assert_ogc_exception(response, 400)
    for name in named:
        assert name in body["detail"], body
    assert requests.get(f"{api}/jobs", timeout=30).json()["jobs"] == []


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'["inputs"]', b'{"inputs": ["message"]}', b"\xff\xfe"],
    ids=["not-json", "not-an-object", "inputs-not-an-object", "not-utf8"],
)
def test_invalid_execute_body_is_400(api: str, body: bytes):
    deploy_cwl(api, ECHO_CWL)
    response = requests.post(
        f"{api}/processes/echo/execution",
        data=body,
        headers={"Content-Type": "application/json", "Prefer": "respond-async"},
        timeout=30,
    )
    assert_ogc_exception(response, 400)


def test_qualified_input_value_is_accepted(api: str):
    deploy_cwl(api, ECHO_CWL)
    response = execute_async(api, "echo", {"message": {"value": "wrapped"}})
    assert response.status_code == 201, response.text
    final = wait_for_status(response.headers["Location"], timeout=60)
    assert final["status"] == "successful", final
    results = requests.get(f"{response.headers['Location']}/results", timeout=30).json()
    assert _said(results) == "wrapped\n"


def test_results_of_a_running_job_are_404_result_not_ready(api: str):
    deploy_cwl(api, sleep_cwl("sleeper", "20.0001"))
    created = execute_async(api, "sleeper", {})
    assert created.status_code == 201, created.text
    job_url = created.headers["Location"]
    try:
        # Accepted or running: either way there is nothing to return yet.
        response = requests.get(f"{job_url}/results", timeout=30)
        assert_ogc_exception(response, 404, f"{P1_EXC}/result-not-ready")
        wait_for_status(job_url, ["running"], timeout=60)
        response = requests.get(f"{job_url}/results", timeout=30)
        body = assert_ogc_exception(response, 404, f"{P1_EXC}/result-not-ready")
        assert "running" in body["detail"]
    finally:
        requests.delete(job_url, timeout=30)
    wait_for_status(job_url, ["dismissed"], timeout=30)
    response = requests.get(f"{job_url}/results", timeout=30)
    assert_ogc_exception(response, 404, f"{P1_EXC}/result-not-ready")


@BOTH_ENGINES
def test_failing_step_fails_the_job_naming_the_step(any_engine: Engine, user: str):
    api = any_engine.api(user)
    deploy_cwl(api, FAILING_WORKFLOW_CWL)
    created = execute_async(api, "two-steps", {"word": "hi"})
    assert created.status_code == 201, created.text
    final = wait_for_status(created.headers["Location"], timeout=60)
    assert final["status"] == "failed", final
    assert "explode" in final["message"], final
    assert "greet" not in final["message"], final
    assert "finished" in final
    # No results for a failed job: an OGC exception that says why.
    response = requests.get(f"{created.headers['Location']}/results", timeout=30)
    assert response.status_code >= 400
    body = assert_ogc_exception(response, response.status_code)
    assert "explode" in body["detail"]


def test_synchronous_execution_of_a_failing_job(api: str):
    deploy_cwl(api, FAILING_WORKFLOW_CWL)
    response = requests.post(
        f"{api}/processes/two-steps/execution", json={"inputs": {"word": "hi"}}, timeout=120
    )
    assert response.status_code >= 400, response.text
    body = assert_ogc_exception(response, response.status_code)
    assert "explode" in body["detail"]
