"""One user's processes and jobs are invisible to another user's prefix and to /ogc-api.

Another user's process or job answers exactly like one that does not exist (404 with
the standard type), for every operation; and nothing another user tries changes it.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import Engine
from tests.support import (
    ECHO_CWL,
    P1_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    wait_for_status,
)

HERS_CWL = ECHO_CWL.replace("id: echo", "id: hers")


@pytest.fixture
def alice(engine: Engine) -> dict[str, str]:
    """A user with a process and a finished job."""
    api = engine.api(f"alice-{uuid.uuid4().hex[:6]}")
    # Not `echo`: every user has the built-in one.
    deploy_cwl(api, HERS_CWL)
    job_url = execute_async(api, "hers", {"message": "mine"}).headers["Location"]
    job_id = wait_for_status(job_url, ["successful"], timeout=60)["jobID"]
    return {"api": api, "job_id": job_id}


@pytest.mark.parametrize("other", ["bob", None], ids=["other-user", "unprefixed"])
def test_other_users_see_nothing(engine: Engine, alice: dict[str, str], other: str | None):
    api = engine.api(f"{other}-{uuid.uuid4().hex[:6]}" if other else None)
    job_id = alice["job_id"]

    listing = requests.get(f"{api}/processes", timeout=30).json()
    assert "hers" not in [p["id"] for p in listing["processes"]]
    jobs = requests.get(f"{api}/jobs", params={"limit": 1000}, timeout=30).json()
    assert job_id not in [j["jobID"] for j in jobs["jobs"]]
    filtered = requests.get(f"{api}/jobs", params={"processID": "hers"}, timeout=30).json()
    assert job_id not in [j["jobID"] for j in filtered["jobs"]]

    no_process = f"{P1_EXC}/no-such-process"
    for method, path, kwargs in (
        ("GET", "/processes/hers", {}),
        ("GET", "/processes/hers/package", {}),
        ("POST", "/processes/hers/execution", {"json": {"inputs": {"message": "x"}}}),
        (
            "PUT",
            "/processes/hers",
            {"data": HERS_CWL.encode(), "headers": {"Content-Type": "application/cwl+yaml"}},
        ),
        ("DELETE", "/processes/hers", {}),
    ):
        response = requests.request(method, api + path, timeout=30, **kwargs)
        assert_ogc_exception(response, 404, no_process)

    no_job = f"{P1_EXC}/no-such-job"
    for method, path in (
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/results"),
        ("DELETE", f"/jobs/{job_id}"),
    ):
        assert_ogc_exception(requests.request(method, api + path, timeout=30), 404, no_job)

    # Alice's process and job are untouched by all of that.
    mine = alice["api"]
    assert requests.get(f"{mine}/processes/hers", timeout=30).json()["title"] == "Echo"
    assert requests.get(f"{mine}/jobs/{job_id}", timeout=30).json()["status"] == "successful"
    assert requests.get(f"{mine}/jobs/{job_id}/results", timeout=30).status_code == 200


def test_same_process_id_for_two_users(engine: Engine, alice: dict[str, str]):
    """Process ids are per user: bob deploys his own `hers` without a conflict."""
    bob = engine.api(f"bob-{uuid.uuid4().hex[:6]}")
    deploy_cwl(bob, HERS_CWL.replace("label: Echo", "label: Bob's echo"))
    assert requests.get(f"{bob}/processes/hers", timeout=30).json()["title"] == "Bob's echo"
    assert requests.get(f"{alice['api']}/processes/hers", timeout=30).json()["title"] == "Echo"
    assert requests.delete(f"{bob}/processes/hers", timeout=30).status_code == 204
    assert requests.get(f"{alice['api']}/processes/hers", timeout=30).status_code == 200


def test_unprefixed_processes_are_their_own_user(engine: Engine):
    """What is deployed at /ogc-api is not visible under a user prefix."""
    shared = engine.api(None)
    process_id = f"echo-{uuid.uuid4().hex[:6]}"
    deploy_cwl(shared, ECHO_CWL.replace("id: echo", f"id: {process_id}"))
    try:
        assert requests.get(f"{shared}/processes/{process_id}", timeout=30).status_code == 200
        someone = engine.api(f"carol-{uuid.uuid4().hex[:6]}")
        response = requests.get(f"{someone}/processes/{process_id}", timeout=30)
        assert_ogc_exception(response, 404, f"{P1_EXC}/no-such-process")
    finally:
        requests.delete(f"{shared}/processes/{process_id}", timeout=30)


def test_user_named_anonymous_does_not_see_unprefixed_processes(engine: Engine):
    """The unprefixed tree's owner must not be reachable as /{name}/ogc-api."""
    shared = engine.api(None)
    process_id = f"echo-{uuid.uuid4().hex[:6]}"
    deploy_cwl(shared, ECHO_CWL.replace("id: echo", f"id: {process_id}"))
    try:
        for path in (f"/processes/{process_id}", "/processes", "/jobs"):
            response = requests.get(f"{engine.api('anonymous')}{path}", timeout=30)
            assert response.status_code in (400, 404), (path, response.text)
            assert_ogc_exception(response, response.status_code)
    finally:
        requests.delete(f"{shared}/processes/{process_id}", timeout=30)
