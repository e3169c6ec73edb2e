"""Part 1 ETS, ``jobs/Jobs.java``: its 33 tests against the built-in echo process, with
the suite's own execute bodies (``tests.conformance.ets``) and pass conditions.

Where the ETS only checks a status code, the test also checks the document against the
schema the ETS's OpenAPI document names for that response. Where the ETS is wrong, the
test says so with the line, and the test after it checks the standard (OGC 18-062r2).
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conformance.ets import (
    TEST_STRING,
    TIMEOUT_S,
    EchoProcess,
    loop_over_status,
    multipart_contains_test_string,
    send_async,
    send_sync,
)
from tests.ogc_schemas import validate
from tests.support import deploy_cwl, sleep_cwl, wait_for_status

JSON = {"Accept": "application/json"}
P1 = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"


def _ok(response: requests.Response) -> None:
    assert response.status_code in (200, 201), (response.status_code, response.text)


def _validate_execute(response: requests.Response) -> None:
    """What the ETS checks of a synchronous answer (Jobs.java:1051, 1181): multipart/
    related (raw, the default ``response``, several outputs) → ``validateMultipartResponse``;
    else ``validateResponse(executeValidator)``: 201 → the job status is validated; 200 →
    the ETS validates nothing of the body (it sets its media type to ``/*``, Jobs.java:
    1618). Nor can one here: the suite's bounding box has ``crs`` ``urn:ogc:def:crs:EPSG:
    6.6:4326`` (Jobs.java:351), which bbox.yaml does not allow, and echo echoes it (see
    test_results_document_is_valid for a valid request's results)."""
    if response.headers["content-type"].startswith("multipart/related"):
        assert multipart_contains_test_string(response)
        return
    _ok(response)
    if response.status_code == 201:
        status = requests.get(response.headers["Location"], headers=JSON, timeout=TIMEOUT_S)
        validate(status.json(), "statusInfo")


# --- job creation ------------------------------------------------------------------------


def test_job_creation_auto_execution_mode(echo: EchoProcess):
    """testJobCreationAutoExecutionMode (Jobs.java:380): Prefer respond-async → 201
    (or 200) for a process offering both modes."""
    assert echo.supports_async and echo.modes == "EITHER"
    assert send_async(echo.execute_url, echo.body()).status_code in (200, 201)


def test_job_creation_default_execution_mode(echo: EchoProcess):
    """testJobCreationDefaultExecutionMode: no Prefer, both modes → 200 (synchronous)."""
    response = send_sync(echo.execute_url, echo.body())
    assert response.status_code == 200, response.text


def test_job_creation_default_outputs(echo: EchoProcess):
    """testJobCreationDefaultOutputs: no ``outputs`` → 200 or 201. Beyond the ETS: every
    output, and (no ``response`` either) raw, the default: a multipart/related part each."""
    response = send_sync(echo.execute_url, echo.body(outputs=False))
    _ok(response)
    assert response.headers["content-type"].startswith("multipart/related")
    assert multipart_contains_test_string(response)
    assert "Content-ID: <string_input>" in response.text


@pytest.mark.parametrize(
    "kind, requirement",
    [
        ("array", "job-creation-input-array"),
        ("bbox", "job-creation-input-inline-bbox"),
        ("binary", "job-creation-input-binary"),
        ("object", "job-creation-input-inline-object"),
    ],
)
def test_job_creation_input_kind(echo: EchoProcess, kind: str, requirement: str):
    """testJobCreationInputArray / InputInlineBbox / InputInlineBinary /
    InputInlineObject: the suite's special value for the first such input (the ETS skips
    when there is none: echo has one of each, so none is skipped) → 200 or 201."""
    body = echo.body_with(kind)
    assert body is not None, f"echo has no {kind} input ({requirement})"
    response = send_sync(echo.execute_url, body)
    _ok(response)


def test_job_creation_input_inline_mixed(echo: EchoProcess):
    """testJobCreationInputInlineMixed: the object body again (createExecuteJsonNode
    WithMixedInput builds what ...WithObject builds) → 200 or 201."""
    _ok(send_sync(echo.execute_url, echo.body_with("object")))


@pytest.mark.parametrize("name", ["testJobCreationInputInline", "testJobCreationInputs"])
def test_job_creation_inputs(echo: EchoProcess, name: str):
    """testJobCreationInputInline / testJobCreationInputs: the default body → 200/201."""
    _ok(send_sync(echo.execute_url, echo.body()))


def test_job_creation_input_ref(echo: EchoProcess):
    """testJobCreationInputRef (Jobs.java:1031): the binary input by reference
    (``{"href": GEOTIFF_URL, "format": {"mediaType": "image/tiff"}}``, the suite's own URL:
    echo returns the reference without fetching it, so no network is needed)."""
    body = echo.body_with("binary")
    assert body is not None
    binary = next(i for i in echo.inputs if any(t.binary for t in i.types))
    body["inputs"][binary.id] = {
        "href": "https://raw.githubusercontent.com/opengeospatial/ets-ogcapi-processes10/"
        "master/src/main/resources/org/opengis/cite/testdata/testgeotiff.tiff",
        "format": {"mediaType": "image/tiff"},
    }
    _validate_execute(send_sync(echo.execute_url, body))


def test_job_creation_input_validation(echo: EchoProcess):
    """testJobCreationInputValidation (Jobs.java:1160): the default body succeeds; with
    ``{"type": "wrong/type_<uuid>"}`` for every input with a media type → 400 or 500, JSON,
    a valid exception."""
    _validate_execute(send_sync(echo.execute_url, echo.body()))
    wrong = echo.body_wrong_input()
    assert wrong is not None, "echo has an input with a contentMediaType"
    response = send_sync(echo.execute_url, wrong)
    assert response.status_code in (400, 500), response.text
    media = response.headers["content-type"]
    assert media == "application/json" or media.startswith("application/json;")
    validate(response.json(), "exception")


def test_job_creation_op(echo: EchoProcess):
    """testJobCreationOp (Jobs.java:1418): ``Prefer: respond-async `` (the suite's
    trailing space) → 200/201; the job at Location is a valid statusInfo."""
    response = send_async(echo.execute_url, echo.body(), prefer="respond-async ")
    _ok(response)
    status = requests.get(response.headers["Location"], timeout=TIMEOUT_S)
    validate(status.json(), "statusInfo")


@pytest.mark.parametrize("name", ["testJobCreationRequest", "testJobCreationSuccessAsync"])
def test_job_creation_request(echo: EchoProcess, name: str):
    """testJobCreationRequest / testJobCreationSuccessAsync: async → the job at Location
    is a valid statusInfo."""
    response = send_async(echo.execute_url, echo.body())
    _ok(response)
    status = requests.get(response.headers["Location"], headers=JSON, timeout=TIMEOUT_S)
    validate(status.json(), "statusInfo")


def test_job_creation_sync_document(echo: EchoProcess):
    """testJobCreationSyncDocument: ``response: document`` → 200/201 (here: the results
    document, a member per produced output)."""
    response = send_sync(echo.execute_url, echo.body(response="document"))
    _ok(response)
    assert response.json()["string_input"] == TEST_STRING


@pytest.mark.parametrize(
    "name",
    [
        "testJobCreationSyncRawMixedMulti",
        "testJobCreationSyncRawRef",
        "testJobCreationSyncRawValueMulti",
    ],
)
def test_job_creation_sync_raw_multi(echo: EchoProcess, name: str):
    """testJobCreationSyncRaw{MixedMulti,Ref,ValueMulti}: ``response: raw``, the default
    body → 200/201. Beyond the ETS: several outputs → multipart/related, one part per
    output with its Content-ID, one holding ``teststring`` (validateMultipartResponse)."""
    response = send_sync(echo.execute_url, echo.body(response="raw"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/related")
    assert multipart_contains_test_string(response)
    assert "Content-ID: <string_input>" in response.text


def test_job_creation_sync_raw_value_one(echo: EchoProcess):
    """testJobCreationSyncRawValueOne (Jobs.java:1797): raw, one output → the body holds
    ``teststring``; beyond the ETS: it is the value itself, as text/plain."""
    response = send_sync(echo.execute_url, echo.body_one_output("raw"))
    _ok(response)
    assert TEST_STRING in response.text
    assert response.text == TEST_STRING
    assert response.headers["content-type"].startswith("text/plain")


# --- job status and results -------------------------------------------------------------


def test_job_exception_no_such_job(root: str):
    """testJobExceptionNoSuchJob: ``/jobs/invalid-job-<uuid>`` → 404 exception."""
    response = requests.get(f"{root}/jobs/invalid-job-{uuid.uuid4()}", headers=JSON, timeout=30)
    assert response.status_code == 404
    validate(response.json(), "exception")
    assert response.json()["type"] == f"{P1}/no-such-job"


def test_job_op(echo: EchoProcess):
    """testJobOp: the default body, no Prefer → 200 or 201."""
    _ok(send_sync(echo.execute_url, echo.body()))


def test_job_results_no_such_job(root: str):
    """testJobResultsNoSuchJob: ``/jobs/invalid-job-<uuid>/results`` → 404 exception."""
    url = f"{root}/jobs/invalid-job-{uuid.uuid4()}/results"
    response = requests.get(url, headers=JSON, timeout=30)
    assert response.status_code == 404
    validate(response.json(), "exception")
    assert response.json()["type"] == f"{P1}/no-such-job"


def test_job_results_exception_results_not_ready(root: str, echo: EchoProcess):
    """testJobResultsExceptionResultsNotReady (Jobs.java:1943): the ETS needs an input
    ``pause`` on echo and skips without one (Jobs.java:2601, createExecuteJsonNodeWith
    PauseInput); echo, an ExpressionTool, cannot pause. Its steps, with a process that
    sleeps instead: async → GET the job → GET its results → 404, type result-not-ready,
    a valid exception."""
    assert not any(i.id == "pause" for i in echo.inputs)
    deploy_cwl(root, sleep_cwl("pause", "30"))
    response = send_async(f"{root}/processes/pause/execution", {"inputs": {}})
    job_url = response.headers["Location"]
    try:
        requests.get(job_url, headers=JSON, timeout=TIMEOUT_S)
        results = requests.get(f"{job_url}/results", headers=JSON, timeout=TIMEOUT_S)
        assert results.status_code == 404
        assert results.json()["type"] == f"{P1}/result-not-ready"
        validate(results.json(), "exception")
    finally:
        requests.delete(job_url, timeout=TIMEOUT_S)


def test_job_results_failed(echo: EchoProcess):
    """testJobResultsFailed: ``{"invalid-execute-request": "true)"}`` → above 200, an
    exception (here: 400, the required string input is missing)."""
    response = send_sync(echo.execute_url, {"invalid-execute-request": "true)"})
    assert response.status_code > 200
    validate(response.json(), "exception")


def test_job_results(echo: EchoProcess):
    """testJobResults (Jobs.java:2102): async → 201; the job → 200, a valid statusInfo."""
    response = send_async(echo.execute_url, echo.body())
    assert response.status_code == 201
    status = requests.get(response.headers["Location"], headers=JSON, timeout=TIMEOUT_S)
    assert status.status_code == 200
    validate(status.json(), "statusInfo")


def test_job_results_async_document(echo: EchoProcess):
    """testJobResultsAsyncDocument: async, ``response: document`` → 200/201. Beyond the
    ETS: the job's results are the document."""
    response = send_async(echo.execute_url, echo.body(response="document"))
    _ok(response)
    assert wait_for_status(response.headers["Location"], timeout=90)["status"] == "successful"
    results = requests.get(f"{response.headers['Location']}/results", timeout=TIMEOUT_S)
    assert results.json()["string_input"] == TEST_STRING


@pytest.mark.parametrize(
    "name",
    [
        "testJobResultsAsyncRawMixedMulti",
        "testJobResultsAsyncRawRef",
        "testJobResultsAsyncRawValueMulti",
    ],
)
def test_job_results_async_raw_multi(echo: EchoProcess, name: str):
    """testJobResultsAsyncRaw{MixedMulti,Ref,ValueMulti}: async with the object body →
    200/201, the job a valid statusInfo. Beyond the ETS: its body names no ``response``,
    so raw, the default (/req/core/job-results-async-raw-value-multi): the job's results
    are multipart/related, as they are with ``response: raw``."""
    response = send_async(echo.execute_url, echo.body_with("object"))
    _ok(response)
    status = requests.get(response.headers["Location"], headers=JSON, timeout=TIMEOUT_S)
    validate(status.json(), "statusInfo")
    raw = send_async(echo.execute_url, echo.body(response="raw")).headers["Location"]
    for job_url in (response.headers["Location"], raw):
        assert wait_for_status(job_url, timeout=90)["status"] == "successful"
        results = requests.get(f"{job_url}/results", timeout=TIMEOUT_S)
        assert results.headers["content-type"].startswith("multipart/related")
        assert multipart_contains_test_string(results)


def test_job_results_async_raw_value_one(echo: EchoProcess):
    """testJobResultsAsyncRawValueOne (Jobs.java:2517): async, raw, one output → 201; the
    status links are followed (``monitor``) until ``results``, which holds teststring."""
    response = send_async(echo.execute_url, echo.body_one_output("raw"))
    assert response.status_code == 201
    status = requests.get(response.headers["Location"], headers=JSON, timeout=TIMEOUT_S).json()
    assert TEST_STRING in loop_over_status(status)
    assert requests.get(f"{response.headers['Location']}/results", timeout=30).text == TEST_STRING


def test_job_results_sync(echo: EchoProcess):
    """testJobResultsSync (Jobs.java:2624): the ETS is wrong here. A synchronous execution
    that creates a job must send ``Link: <job>; rel="monitor"`` (Permission 7, Req. 33);
    the ETS finds it only written unquoted (``headerValue.contains("rel=monitor")``,
    Jobs.java:2639), though RFC 8288 allows the quoted form, and then requests
    ``headerValue.split(";")[0]`` (Jobs.java:2641), the URL still in its angle brackets,
    which no client can GET. What it means to check: the header is there, its target a
    valid statusInfo (parsed as RFC 8288 says)."""
    response = send_sync(echo.execute_url, echo.body())
    assert response.status_code == 200
    link = response.headers["Link"]
    assert 'rel="monitor"' in link
    target = link.split(";")[0].strip().removeprefix("<").removesuffix(">")
    status = requests.get(target, headers=JSON, timeout=TIMEOUT_S)
    validate(status.json(), "statusInfo")


def test_job_results_sync_standard(echo: EchoProcess):
    """The standard (Req. 33 /req/core/process-execute-sync-job): the Link header's
    ``monitor`` target is the job created for the synchronous execution, successful."""
    response = send_sync(echo.execute_url, echo.body())
    monitor = response.links["monitor"]["url"]
    status = requests.get(monitor, headers=JSON, timeout=TIMEOUT_S).json()
    assert status["status"] == "successful"
    assert status["processID"] == echo.process_id


def test_job_success(echo: EchoProcess):
    """testJobSuccess: ``Prefer: respond-async `` → 200/201, the job a valid statusInfo."""
    response = send_async(echo.execute_url, echo.body(), prefer="respond-async ")
    _ok(response)
    status = requests.get(response.headers["Location"], timeout=TIMEOUT_S)
    validate(status.json(), "statusInfo")


# --- the standard where the ETS's bodies do not reach it -----------------------------


def test_raw_results_by_reference_are_links(root: str, echo: EchoProcess, file_server):
    """Req. /req/core/process-execute-sync-raw-ref: raw, every output by reference → 204
    and a Link header per output (the ETS's ...RawRef bodies ask for values)."""
    url = file_server.add("ets-ref.bin", b"by reference")
    body = {
        "inputs": {"string_input": TEST_STRING, "file_input": url},
        "outputs": {"file_input": {"transmissionMode": "reference"}},
        "response": "raw",
    }
    response = send_sync(echo.execute_url, body)
    assert response.status_code == 204, response.text
    links = requests.utils.parse_header_links(response.headers["Link"])
    target = next(link["url"] for link in links if link["rel"] == RESULTS_REL)
    assert requests.get(target, timeout=TIMEOUT_S).content == b"by reference"


def test_optional_outputs_not_produced_are_left_out(echo: EchoProcess):
    """results.yaml has no null: outputs of inputs not given are absent."""
    body = {"inputs": {"string_input": "x"}, "response": "document"}
    assert send_sync(echo.execute_url, body).json() == {"string_input": "x"}


def test_no_response_is_raw_one_output_is_its_value(echo: EchoProcess):
    """/req/core/process-execute-sync-raw-value-one with ``response`` left to its default
    (raw, execute.yaml): one output → the value itself, with its media type, and the
    monitor link."""
    body = echo.body_one_output("raw")
    del body["response"]
    response = send_sync(echo.execute_url, body)
    assert response.status_code == 200, response.text
    assert response.text == TEST_STRING
    assert response.headers["content-type"].startswith("text/plain")
    assert "monitor" in response.links


def test_no_response_async_results_are_raw(echo: EchoProcess):
    """/req/core/job-results-async-raw-value-one with ``response`` left to its default:
    the job's results are the one output's value; the same job asked ``document`` (the
    form every client reading JSON names) answers the results document."""
    body = echo.body_one_output("raw")
    del body["response"]
    raw = send_async(echo.execute_url, body).headers["Location"]
    document = send_async(echo.execute_url, {**body, "response": "document"}).headers["Location"]
    for job_url in (raw, document):
        assert wait_for_status(job_url, timeout=90)["status"] == "successful"
    value = requests.get(f"{raw}/results", timeout=TIMEOUT_S)
    assert value.text == TEST_STRING
    assert value.headers["content-type"].startswith("text/plain")
    results = requests.get(f"{document}/results", timeout=TIMEOUT_S)
    assert results.headers["content-type"] == "application/json"
    assert results.json() == {echo.inputs[0].id: TEST_STRING}


def test_results_document_is_valid(echo: EchoProcess):
    """/req/core/process-execute-sync-document: a valid request's results document (the
    suite's CRS84 bounding box, Jobs.java:660) validates against results.yaml."""
    body = echo.body_with("bbox")
    assert body is not None
    body["outputs"] = {}
    response = send_sync(echo.execute_url, {**body, "response": "document"})
    assert response.status_code == 200
    validate(response.json(), "results")
