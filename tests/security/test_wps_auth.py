"""The WPS under OIDC: the OGC API's rules, as ExceptionReports.

No token: 401 with ``WWW-Authenticate: Bearer``; a valid token on another user's
``/{user}/wps``: 403, the same whether the thing exists or not; another user's job on
one's own WPS: NoSuchJob, exactly like a job that does not exist. OWSLib sends its
headers with every request, status polls included, so it works with a token.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests
from lxml import etree
from owslib.wps import ASYNC, WebProcessingService

from tests.api_gateway.wps_support import NS, OWS2, OWS11, V2, job_request_v2
from tests.security.conftest import OidcGateway, auth
from tests.security.test_isolation_matrix import alice  # noqa: F401 (fixture: hers and a job)
from tests.wps_schemas import validate_if_available


def _wps(gateway: OidcGateway, user: str | None) -> str:
    return f"{gateway.url}/{user}/wps" if user else f"{gateway.url}/wps"


def _report(response: requests.Response, status: int, version: str = "1.0.0") -> tuple:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/xml")
    validate_if_available(response.content, version)
    ows = OWS2 if version == V2 else OWS11
    exception = etree.fromstring(response.content).find(f"{{{ows}}}Exception")
    text = re.sub(r"[0-9a-f-]{36}", "<id>", exception.findtext(f"{{{ows}}}ExceptionText"))
    return exception.get("exceptionCode"), exception.get("locator"), text


def test_no_token_is_401_with_a_bearer_challenge(oidc_gateway: OidcGateway, alice: dict):  # noqa: F811
    for url in (_wps(oidc_gateway, alice["name"]), _wps(oidc_gateway, None)):
        response = requests.get(url, params={"service": "WPS", "request": "GetCapabilities"})
        assert _report(response, 401)[0] == "NoApplicableCode"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_own_token_sees_own_processes_on_both_trees(oidc_gateway: OidcGateway, alice: dict):  # noqa: F811
    for url in (_wps(oidc_gateway, alice["name"]), _wps(oidc_gateway, None)):
        wps = WebProcessingService(url, headers=auth(alice["token"]), timeout=60)
        assert [p.identifier for p in wps.processes] == ["echo", "hers"]  # built-in, hers


def test_owslib_runs_a_job_with_a_token(oidc_gateway: OidcGateway, alice: dict):  # noqa: F811
    wps = WebProcessingService(
        _wps(oidc_gateway, None), headers=auth(alice["token"]), skip_caps=True, timeout=60
    )
    # With outputs named, OWSLib asks for a stored response (without, 1.0.0 runs it sync).
    outputs = [("said", True, None)]
    execution = wps.execute("hers", [("message", "with a token")], output=outputs, mode=ASYNC)
    assert execution.statusLocation, execution.response
    deadline = time.monotonic() + 90
    while not execution.isComplete():
        assert time.monotonic() < deadline, execution.status
        execution.checkStatus(sleepSecs=0.2)
    assert execution.isSucceeded(), [(e.code, e.text) for e in execution.errors]


@pytest.mark.parametrize("operation", ["GetStatus", "GetResult", "Dismiss", "statusLocation"])
@pytest.mark.parametrize("tree", ["own", "unprefixed"])
def test_bob_cannot_tell_alices_jobs_exist(
    oidc_gateway: OidcGateway,
    alice: dict,  # noqa: F811
    operation: str,
    tree: str,
):
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    headers = auth(oidc_gateway.issuer.token(bob))
    url = _wps(oidc_gateway, bob if tree == "own" else None)

    def ask(job_id: str) -> tuple:
        if operation == "statusLocation":
            return _report(requests.get(f"{url}/jobs/{job_id}", headers=headers, timeout=30), 400)
        body = etree.tostring(job_request_v2(operation, job_id))
        response = requests.post(url, data=body, headers=headers, timeout=30)
        return _report(response, 400, V2)

    hers, missing = ask(alice["job_id"]), ask(str(uuid.uuid4()))
    assert hers[0] == "NoSuchJob" and hers == missing


def test_bob_on_alices_wps_is_forbidden_alike(oidc_gateway: OidcGateway, alice: dict):  # noqa: F811
    headers = auth(oidc_gateway.issuer.token(f"bob-{uuid.uuid4().hex[:6]}"))
    url = _wps(oidc_gateway, alice["name"])
    answers = [
        _report(requests.get(f"{url}/jobs/{job_id}", headers=headers, timeout=30), 403)
        for job_id in (alice["job_id"], str(uuid.uuid4()))
    ]
    assert answers[0] == answers[1]
    described = requests.get(
        url,
        params={"service": "WPS", "version": "1.0.0", "request": "DescribeProcess",
                "identifier": "hers"},
        headers=headers,
        timeout=30,
    )  # fmt: skip
    assert _report(described, 403)[0] == "NoApplicableCode"


def test_alices_job_is_untouched(oidc_gateway: OidcGateway, alice: dict):  # noqa: F811
    """Runs last: no Dismiss of bob's reached alice's job."""
    url = _wps(oidc_gateway, alice["name"])
    body = etree.tostring(job_request_v2("GetStatus", alice["job_id"]))
    response = requests.post(url, data=body, headers=auth(alice["token"]), timeout=30)
    assert response.status_code == 200, response.text
    status = etree.fromstring(response.content).findtext("wps2:Status", namespaces=NS)
    assert status == "Succeeded"
