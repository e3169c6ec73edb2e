"""Bad WPS requests answer ExceptionReports with the standard code and a 4xx, never a 5xx.

Codes and statuses are those the README's WPS section lists: every code a client can
cause is a 400 (OWS 2.0's 501 for OperationNotSupported included), 405 and 413 come from
the HTTP layer. Another user's job is NoSuchJob exactly like a missing one.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests

from tests.api_gateway.wps_support import (
    NS,
    V1,
    V2,
    WPS_ECHO_CWL,
    document,
    execute_v1,
    execute_v2,
    job_request_v2,
    poll_v1,
    report,
    status_of_v1,
    wps_get,
    wps_post,
)
from tests.conftest import MAX_REQUEST_BYTES, Engine
from tests.support import deploy_cwl, execute_async, wait_for_status


@pytest.fixture(scope="module")
def wps(engine: Engine) -> str:
    """The WPS of a user with ``wps-echo`` deployed."""
    user = f"wps-bad-{uuid.uuid4().hex[:6]}"
    deploy_cwl(engine.api(user), WPS_ECHO_CWL)
    return f"{engine.url}/{user}/wps"


# (params, status, code, locator) of KVP requests, each in the version its params name.
KVP = {
    "unknown operation": ({"service": "WPS", "request": "Frobnicate"}, "OperationNotSupported"),
    "no request": ({"service": "WPS"}, "MissingParameterValue", "request"),
    "no service": ({"request": "GetCapabilities"}, "MissingParameterValue", "service"),
    "other service": (
        {"service": "WMS", "request": "GetCapabilities"},
        "InvalidParameterValue",
        "service",
    ),
    "unknown version": (
        {"service": "WPS", "request": "DescribeProcess", "version": "3.0.0", "identifier": "x"},
        "VersionNegotiationFailed",
    ),
    "no accepted version": (
        {"service": "WPS", "request": "GetCapabilities", "AcceptVersions": "0.1.0,3.0.0"},
        "VersionNegotiationFailed",
    ),
    "no version": (
        {"service": "WPS", "request": "DescribeProcess", "identifier": "wps-echo"},
        "MissingParameterValue",
        "version",
    ),
    "no identifier": (
        {"service": "WPS", "request": "DescribeProcess", "version": V1},
        "MissingParameterValue",
        "identifier",
    ),
    "unknown process 1.0.0": (
        {"service": "WPS", "request": "DescribeProcess", "version": V1, "identifier": "nope"},
        "InvalidParameterValue",
        "nope",
    ),
    "unknown process 2.0": (
        {"service": "WPS", "request": "DescribeProcess", "version": V2, "identifier": "nope"},
        "NoSuchProcess",
        "nope",
    ),
    "unknown language": (
        {"service": "WPS", "request": "GetCapabilities", "language": "xx-XX"},
        "InvalidParameterValue",
        "language",
    ),
    "unknown input": (
        {
            "service": "WPS",
            "request": "Execute",
            "version": V1,
            "identifier": "wps-echo",
            "DataInputs": "message=a;colour=red",
        },
        "InvalidParameterValue",
        "colour",
    ),
    "missing input": (
        {"service": "WPS", "request": "Execute", "version": V1, "identifier": "wps-echo"},
        "MissingParameterValue",
        "message",
    ),
    "not an integer": (
        {
            "service": "WPS",
            "request": "Execute",
            "version": V1,
            "identifier": "wps-echo",
            "DataInputs": "message=a;times=many",
        },
        "InvalidParameterValue",
        "times",
    ),
    "not an allowed value": (
        {
            "service": "WPS",
            "request": "Execute",
            "version": V1,
            "identifier": "wps-echo",
            "DataInputs": "message=a;mode=shouting",
        },
        "InvalidParameterValue",
        "mode",
    ),
    "unknown output": (
        {
            "service": "WPS",
            "request": "Execute",
            "version": V1,
            "identifier": "wps-echo",
            "DataInputs": "message=a",
            "RawDataOutput": "nothing",
        },
        "InvalidParameterValue",
        "nothing",
    ),
    "status without store": (
        {
            "service": "WPS",
            "request": "Execute",
            "version": V1,
            "identifier": "wps-echo",
            "DataInputs": "message=a",
            "status": "true",
        },
        "InvalidParameterValue",
        "status",
    ),
    "2.0 KVP execute": (
        {"service": "WPS", "request": "Execute", "version": V2, "identifier": "wps-echo"},
        "OperationNotSupported",
    ),
    "1.0.0 GetStatus": (
        {"service": "WPS", "request": "GetStatus", "version": V1, "jobId": "x"},
        "OperationNotSupported",
    ),
    "no job id": (
        {"service": "WPS", "request": "GetResult", "version": V2},
        "MissingParameterValue",
        "JobID",
    ),
    "unknown job": (
        {"service": "WPS", "request": "GetStatus", "version": V2, "jobId": str(uuid.uuid4())},
        "NoSuchJob",
    ),
    "not a job id": (
        {"service": "WPS", "request": "Dismiss", "version": V2, "jobId": "../../etc"},
        "NoSuchJob",
    ),
}


@pytest.mark.parametrize("case", list(KVP))
def test_bad_kvp_request(wps: str, case: str):
    params, code, *locator = KVP[case]
    version = V2 if V2 in (params.get("version"), params.get("AcceptVersions")) else V1
    found = report(wps_get(wps, **params), 400, code, version)
    if locator:
        assert found["locator"] == locator[0], found
    assert found["text"], found


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS" version="1.0.0">
  <ows:Identifier>&lol9;</ows:Identifier></wps:DescribeProcess>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS" version="1.0.0">
  <ows:Identifier>&xxe;</ows:Identifier></wps:DescribeProcess>"""

# (body, code) of XML requests.
XML = {
    "malformed": (
        b"<wps:Execute xmlns:wps='http://www.opengis.net/wps/1.0.0'>",
        "NoApplicableCode",
    ),
    "empty": (b"", "NoApplicableCode"),
    "billion laughs": (BILLION_LAUGHS, "NoApplicableCode"),
    "external entity": (XXE, "NoApplicableCode"),
    "not WPS": (b"<GetMap service='WMS'/>", "OperationNotSupported"),
    "unknown WPS operation": (
        b"<wps:Frobnicate xmlns:wps='http://www.opengis.net/wps/1.0.0' service='WPS'/>",
        "OperationNotSupported",
    ),
    "wrong version attribute": (
        b"<wps:DescribeProcess xmlns:wps='http://www.opengis.net/wps/1.0.0' service='WPS' "
        b"version='2.0.0'/>",
        "VersionNegotiationFailed",
    ),
}


@pytest.mark.parametrize("case", list(XML))
def test_bad_xml_request(engine: Engine, wps: str, case: str):
    body, code = XML[case]
    found = report(wps_post(wps, body), 400, code, V1)
    assert "/etc/hostname" not in found["text"] and "lollol" not in found["text"]
    # The gateway is still there, and well.
    assert wps_get(wps, service="WPS", request="GetCapabilities").status_code == 200


# (execute document, code, locator) of WPS 2.0 Execute requests.
EXECUTE_V2 = {
    "unknown input": (
        execute_v2("wps-echo", [("message", "literal", "a"), ("colour", "literal", "red")]),
        "NoSuchInput",
        "colour",
    ),
    "unknown output": (
        execute_v2("wps-echo", [("message", "literal", "a")], outputs=[("x", "value")]),
        "NoSuchOutput",
        "x",
    ),
    "too many inputs": (
        execute_v2("wps-echo", [("message", "literal", "a"), ("message", "literal", "b")]),
        "TooManyInputs",
        "message",
    ),
    "wrong input data": (
        execute_v2("wps-echo", [("message", "literal", "a"), ("mode", "literal", "x")]),
        "WrongInputData",
        "mode",
    ),
    "a file by value": (
        execute_v2("wps-echo", [("message", "literal", "a"), ("infile", "complex", "{}")]),
        "InvalidParameterValue",
        "infile",
    ),
    "raw asynchronously": (
        execute_v2("wps-echo", [("message", "literal", "a")], mode="async", response="raw"),
        "InvalidParameterValue",
        "response",
    ),
    "unknown process": (execute_v2("nope", []), "NoSuchProcess", "nope"),
}


@pytest.mark.parametrize("case", list(EXECUTE_V2))
def test_bad_wps_2_execute(wps: str, case: str):
    body, code, locator = EXECUTE_V2[case]
    assert report(wps_post(wps, body), 400, code, V2)["locator"] == locator


def test_http_layer_errors_are_exception_reports(engine: Engine, wps: str):
    put = requests.put(wps, data=b"<x/>", timeout=30)
    report(put, 405, "OperationNotSupported", V1)
    too_large = wps_post(wps, b"<x>" + b"a" * MAX_REQUEST_BYTES + b"</x>")
    report(too_large, 413, "FileSizeExceeded", V1)
    reserved = wps_get(f"{engine.url}/anonymous/wps", service="WPS", request="GetCapabilities")
    report(reserved, 400, "InvalidParameterValue", V1)


@pytest.fixture(scope="module")
def owners_job(engine: Engine) -> str:
    """A finished job of another user."""
    owner = engine.api(f"wps-owner-{uuid.uuid4().hex[:6]}")
    deploy_cwl(owner, WPS_ECHO_CWL)
    created = execute_async(owner, "wps-echo", {"message": "mine"})
    assert wait_for_status(created.headers["Location"])["status"] == "successful"
    return created.json()["jobID"]


def _job_report(wps: str, operation: str, job_id: str) -> dict[str, Any]:
    if operation == "statusLocation":
        found = report(requests.get(f"{wps}/jobs/{job_id}", timeout=30), 400, "NoSuchJob", V1)
    else:
        found = report(wps_post(wps, job_request_v2(operation, job_id)), 400, "NoSuchJob", V2)
    found["text"] = re.sub(r"[0-9a-f-]{36}", "<id>", found["text"])
    return found


@pytest.mark.parametrize("operation", ["GetStatus", "GetResult", "Dismiss", "statusLocation"])
def test_another_users_job_is_no_such_job(wps: str, owners_job: str, operation: str):
    theirs = _job_report(wps, operation, owners_job)
    missing = _job_report(wps, operation, str(uuid.uuid4()))
    assert theirs == missing


FAILING_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: fails
baseCommand: [sh, -c, "echo boom >&2; exit 3"]
inputs: []
outputs:
  out:
    type: stdout
"""


def test_a_failed_job_is_process_failed_and_has_no_result(wps: str):
    deploy_cwl(wps.removesuffix("/wps") + "/ogc-api", FAILING_CWL)
    accepted = document(wps_post(wps, execute_v1("fails", [], store=True)), V1)
    location = accepted.get("statusLocation")
    failed = poll_v1(location)[-1]
    assert status_of_v1(failed) == "ProcessFailed"
    text = failed.findtext(".//ows:ExceptionText", namespaces=NS)
    assert "boom" in text or "exit" in text or "failed" in text, text
    job_id = location.rsplit("/", 1)[1]
    result = report(wps_post(wps, job_request_v2("GetResult", job_id)), 400, "NoApplicableCode", V2)
    assert "failed" in result["text"]
