"""Two users with OIDC tokens, every endpoint: bob never sees or touches alice's things.

Alice deploys ``hers`` and runs a job. For every operation of the API, bob's token — on
his own tree and on the unprefixed one — gets the answer a missing process or job gets
(same status, type and title), and on alice's tree a 403 that is the same whether the
thing exists or not. Afterwards alice's process and job are unchanged.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from tests.security.conftest import OidcGateway, auth
from tests.support import ECHO_CWL, FINAL

ECHO_YAML = {"Content-Type": "application/cwl+yaml"}
HERS_CWL = ECHO_CWL.replace("id: echo", "id: hers")


@pytest.fixture(scope="module")
def alice(oidc_gateway: OidcGateway) -> dict[str, Any]:
    """Alice, her process ``hers`` (not ``echo``: every user has the built-in one) and a
    finished job."""
    name = f"alice-{uuid.uuid4().hex[:6]}"
    token = oidc_gateway.issuer.token(name)
    api = oidc_gateway.api(name)
    response = requests.post(
        f"{api}/processes", data=HERS_CWL.encode(), headers={**ECHO_YAML, **auth(token)}, timeout=60
    )
    assert response.status_code == 201, response.text
    response = requests.post(
        f"{api}/processes/hers/execution",
        json={"inputs": {"message": "alice's"}},
        headers={"Prefer": "respond-async", **auth(token)},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["jobID"]
    _wait(f"{api}/jobs/{job_id}", token)
    return {"name": name, "token": token, "api": api, "job_id": job_id}


def _wait(url: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        body = requests.get(url, headers=auth(token), timeout=30).json()
        if body["status"] in FINAL:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish")


# (method, path template, request kwargs); {job} is a job id, {process} a process id.
OPERATIONS = {
    "describe": ("GET", "/processes/{process}", {}),
    "package": ("GET", "/processes/{process}/package", {}),
    "execute": ("POST", "/processes/{process}/execution", {"json": {"inputs": {"message": "x"}}}),
    "replace": ("PUT", "/processes/{process}", {"data": ECHO_CWL.encode(), "headers": ECHO_YAML}),
    "undeploy": ("DELETE", "/processes/{process}", {}),
    "status": ("GET", "/jobs/{job}", {}),
    "results": ("GET", "/jobs/{job}/results", {}),
    "dismiss": ("DELETE", "/jobs/{job}", {}),
}


def _call(base: str, operation: str, token: str, process: str, job: str) -> requests.Response:
    method, template, kwargs = OPERATIONS[operation]
    kwargs = dict(kwargs)
    headers = {**kwargs.pop("headers", {}), **auth(token)}
    path = template.format(process=process, job=job)
    return requests.request(method, base + path, headers=headers, timeout=30, **kwargs)


def _shape(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["type"], body["title"]


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("tree", ["own", "unprefixed"])
def test_bob_cannot_tell_alices_things_exist(
    oidc_gateway: OidcGateway, alice: dict[str, Any], operation: str, tree: str
):
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    token = oidc_gateway.issuer.token(bob)
    base = oidc_gateway.api(bob if tree == "own" else None)
    hers = _call(base, operation, token, "hers", alice["job_id"])
    missing = _call(base, operation, token, "no-such-proc", str(uuid.uuid4()))
    assert hers.status_code == 404, hers.text
    assert _shape(hers) == _shape(missing)


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_bob_on_alices_tree_is_forbidden_alike(
    oidc_gateway: OidcGateway, alice: dict[str, Any], operation: str
):
    token = oidc_gateway.issuer.token(f"bob-{uuid.uuid4().hex[:6]}")
    hers = _call(alice["api"], operation, token, "hers", alice["job_id"])
    missing = _call(alice["api"], operation, token, "no-such-proc", str(uuid.uuid4()))
    assert hers.status_code == 403, hers.text
    assert _shape(hers) == _shape(missing) and hers.json()["detail"] == missing.json()["detail"]


@pytest.mark.parametrize("tree", ["own", "unprefixed"])
def test_bob_lists_and_deploys_without_seeing_alice(
    oidc_gateway: OidcGateway, alice: dict[str, Any], tree: str
):
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    token = oidc_gateway.issuer.token(bob)
    base = oidc_gateway.api(bob if tree == "own" else None)
    listing = requests.get(f"{base}/processes", headers=auth(token), timeout=30).json()
    assert "hers" not in [p["id"] for p in listing["processes"]]
    for params in ({}, {"processID": "hers"}, {"limit": 1000}):
        jobs = requests.get(f"{base}/jobs", params=params, headers=auth(token), timeout=30)
        assert alice["job_id"] not in [j["jobID"] for j in jobs.json()["jobs"]]
    # Deploying the same id is no conflict: ids are per user, nothing to learn.
    deployed = requests.post(
        f"{base}/processes",
        data=HERS_CWL.encode(),
        headers={**ECHO_YAML, **auth(token)},
        timeout=60,
    )
    assert deployed.status_code == 201, deployed.text
    assert requests.delete(f"{base}/processes/hers", headers=auth(token), timeout=30).ok


def test_alices_things_are_untouched(oidc_gateway: OidcGateway, alice: dict[str, Any]):
    """Runs last in this module: nothing bob tried changed alice's process or job."""
    headers = auth(alice["token"])
    for base in (alice["api"], oidc_gateway.api(None)):
        assert requests.get(f"{base}/processes/hers", headers=headers, timeout=30).ok
        status = requests.get(f"{base}/jobs/{alice['job_id']}", headers=headers, timeout=30)
        assert status.json()["status"] == "successful", status.text
        results = requests.get(
            f"{base}/jobs/{alice['job_id']}/results", headers=headers, timeout=30
        )
        assert results.status_code == 200, results.text
