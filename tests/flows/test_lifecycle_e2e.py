"""A job's end of life on a real stack with S3 (moto): clean failure, delete, retention.

``s3_engine`` (the session's S3 stack) runs the default policy: partial results are
removed, results are kept until a DELETE. ``lifecycle_engine``, started here, keeps
failed jobs' outputs (``OAPIP_KEEP_FAILED_OUTPUTS``) and expires results after a few
seconds (``OAPIP_JOB_RETENTION_DAYS``), with its housekeeping deployment served.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from flows.housekeeping import _BULK, _PAGE
from tests.conftest import Engine, FileServer, _running_engine
from tests.s3_server import S3Server
from tests.support import (
    ECHO_CWL,
    P1_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    finished_jobs,
    flow_run_id,
    job_runs,
    poll,
    sleep_cwl,
    wait_for_status,
)

RETENTION_S = 4.0  # the lifecycle engine's retention of results, seconds

_CATALOG = {
    "type": "Catalog",
    "stac_version": "1.0.0",
    "id": "out",
    "description": "a catalog naming an asset the tool did not write",
    "links": [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
        {"rel": "item", "href": "./scene/scene.json", "type": "application/json"},
    ],
}
_ITEM = {
    "type": "Feature",
    "stac_version": "1.0.0",
    "id": "scene",
    "geometry": None,
    "properties": {"datetime": "2023-11-21T00:00:00Z"},
    "links": [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
    ],
    "assets": {"data": {"href": "./missing.tif", "type": "image/tiff"}},
}
# Its first output is a file (uploaded), its second a STAC catalog whose asset is missing:
# stage-out fails after it uploaded the first.
HALFWAY_CWL = json.dumps(
    {
        "cwlVersion": "v1.2",
        "class": "CommandLineTool",
        "id": "halfway",
        "baseCommand": ["sh", "-c"],
        "arguments": [
            'echo "$2" > first.txt && mkdir -p out/scene && printf \'%s\' "$0" > '
            "out/catalog.json && printf '%s' \"$1\" > out/scene/scene.json",
            json.dumps(_CATALOG),
            json.dumps(_ITEM),
            "$(inputs.note)",
        ],
        "inputs": {"note": "string"},
        "outputs": {
            "a_first": {"type": "File", "outputBinding": {"glob": "first.txt"}},
            "b_catalog": {"type": "Directory", "outputBinding": {"glob": "out"}},
        },
    }
)


@pytest.fixture(scope="module")
def lifecycle_engine(
    tmp_path_factory: pytest.TempPathFactory,
    tool_bin: Path,
    file_server: FileServer,
    stageout_s3: S3Server,
) -> Iterator[Engine]:
    env = {
        **stageout_s3.environment(""),
        "OAPIP_KEEP_FAILED_OUTPUTS": "true",
        "OAPIP_JOB_RETENTION_DAYS": str(RETENTION_S / 86400),
        "OAPIP_JOB_PURGE_DAYS": str(RETENTION_S / 86400),
        # Runs are started by the tests; the schedule must not expire jobs meanwhile.
        "OAPIP_HOUSEKEEPING_INTERVAL_S": "86400",
        # Housekeeping at full speed: its pace is test_housekeeping.py's business.
        "OAPIP_HOUSEKEEPING_DUTY": "1",
        "OAPIP_STAGING_ATTEMPTS": "2",
    }
    home = tmp_path_factory.mktemp("oapip-home-lifecycle")
    with _running_engine("lifecycle", home, tool_bin, extra_env=env) as running:
        yield running


def _run(api: str, process_id: str, inputs: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    created = execute_async(api, process_id, inputs)
    assert created.status_code == 201, created.text
    job_url = created.headers["Location"]
    return job_url, created.json()["jobID"], wait_for_status(job_url, timeout=120)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- clean failure ----------------------------------------------------------------------


def test_a_stage_out_that_fails_halfway_leaves_nothing(
    s3_engine: Engine, user: str, stageout_s3: S3Server
):
    api = s3_engine.api(user)
    deploy_cwl(api, HALFWAY_CWL, media_type="application/cwl+json")
    job_url, job_id, final = _run(api, "halfway", {"note": "first"})
    assert final["status"] == "failed", final
    assert "asset 'data' of item 'scene'" in final["message"], final
    assert "the 1 files it had uploaded were removed" in final["message"], final
    assert stageout_s3.keys("eoepca", f"processing-results/{job_id}/") == []


def test_kept_outputs_of_a_failed_job_are_named(
    lifecycle_engine: Engine, user: str, stageout_s3: S3Server
):
    api = lifecycle_engine.api(user)
    deploy_cwl(api, HALFWAY_CWL, media_type="application/cwl+json")
    job_url, job_id, final = _run(api, "halfway", {"note": "kept"})
    assert final["status"] == "failed", final
    prefix = f"processing-results/{job_id}/"
    assert f"kept at s3://eoepca/{prefix}" in final["message"], final
    assert stageout_s3.keys("eoepca", prefix) == [f"{prefix}a_first/first.txt"]


def test_a_job_dismissed_mid_way_leaves_nothing(
    s3_engine: Engine, user: str, stageout_s3: S3Server
):
    """What a dismissed job had uploaded (put there by the test while the job runs, as a
    stage-out cut short would leave it) is removed when the worker ends the job."""
    api = s3_engine.api(user)
    deploy_cwl(api, sleep_cwl("sleeper", "600"))
    created = execute_async(api, "sleeper", {})
    assert created.status_code == 201, created.text
    job_url, job_id = created.headers["Location"], created.json()["jobID"]
    wait_for_status(job_url, ["running"], timeout=60)
    partial = f"processing-results/{job_id}/out/part.bin"
    stageout_s3.put("eoepca", partial, b"half an output")

    assert requests.delete(job_url, timeout=30).status_code == 200
    assert (
        wait_for_status(job_url, ["dismissed", "failed", "successful"], timeout=60)["status"]
        == "dismissed"
    )
    poll(
        lambda: stageout_s3.keys("eoepca", f"processing-results/{job_id}/") == [],
        timeout=30,
        what="the partial results removed",
    )


# --- delete is delete -------------------------------------------------------------------


def _prefect(engine: Engine, method: str, path: str, **body: Any) -> requests.Response:
    return requests.request(
        method, f"{engine.prefect_api_url}{path}", json=body, auth=engine.prefect_auth, timeout=30
    )


def test_delete_of_a_finished_job_removes_everything(
    s3_engine: Engine, user: str, stageout_s3: S3Server
):
    api = s3_engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    job_url, job_id, final = _run(api, "echo", {"message": "delete me"})
    assert final["status"] == "successful", final
    prefix = f"processing-results/{job_id}/"
    assert stageout_s3.keys("eoepca", prefix) == [f"{prefix}said/said.txt"]
    run_id = flow_run_id(s3_engine.prefect_api_url, job_id, s3_engine.prefect_auth)
    run_artifacts = {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    assert _prefect(s3_engine, "POST", "/artifacts/filter", **run_artifacts).json()

    # Another user's DELETE is a 404 and removes nothing.
    stranger = s3_engine.api(f"stranger-{uuid.uuid4().hex[:6]}")
    assert_ogc_exception(
        requests.delete(f"{stranger}/jobs/{job_id}", timeout=30), 404, f"{P1_EXC}/no-such-job"
    )
    assert stageout_s3.keys("eoepca", prefix) == [f"{prefix}said/said.txt"]
    assert _prefect(s3_engine, "GET", f"/flow_runs/{run_id}").status_code == 200

    response = requests.delete(job_url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "dismissed"

    assert stageout_s3.keys("eoepca", prefix) == []
    assert _prefect(s3_engine, "GET", f"/flow_runs/{run_id}").status_code == 404
    assert _prefect(s3_engine, "POST", "/artifacts/filter", **run_artifacts).json() == []
    run_logs = {"logs": {"flow_run_id": {"any_": [run_id]}}}
    poll(
        lambda: _prefect(s3_engine, "POST", "/logs/filter", **run_logs).json() == [],
        timeout=30,
        what="the run's logs deleted",
    )
    for url in (job_url, f"{job_url}/results", f"{job_url}/logs"):
        assert_ogc_exception(requests.get(url, timeout=30), 404, f"{P1_EXC}/no-such-job")
    listed = requests.get(f"{api}/jobs", timeout=30).json()["jobs"]
    assert job_id not in [j["jobID"] for j in listed]


# --- retention --------------------------------------------------------------------------


def _deployment(engine: Engine) -> dict[str, Any]:
    """The housekeeping deployment, once its process has created it."""

    def found() -> dict[str, Any] | None:
        r = _prefect(engine, "GET", "/deployments/name/oapip-housekeeping/housekeeping")
        return r.json() if r.status_code == 200 else None

    return poll(found, timeout=60, what="the housekeeping deployment")


def _housekeeping(engine: Engine, as_of: dt.datetime) -> dict[str, Any]:
    """Run the housekeeping deployment now, as of ``as_of``; its finished flow run."""
    deployment = _deployment(engine)
    key = str(uuid.uuid4())

    def created() -> requests.Response | None:
        # SQLite answers 503 while another writer holds it (after a burst of writes).
        run = _prefect(
            engine,
            "POST",
            f"/deployments/{deployment['id']}/create_flow_run",
            parameters={"as_of": as_of.isoformat()},
            idempotency_key=key,
        )
        return None if run.status_code == 503 else run

    run = poll(created, timeout=60, interval=0.5, what="the housekeeping run created")
    assert run.status_code == 201, run.text
    return _finished(engine, run.json()["id"])


def _finished(engine: Engine, run_id: str) -> dict[str, Any]:
    """Flow run ``run_id`` once it has ended."""

    def finished() -> dict[str, Any] | None:
        response = _prefect(engine, "GET", f"/flow_runs/{run_id}")
        body = response.json() if response.status_code == 200 else {"state": {"type": None}}
        final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        return body if body["state"]["type"] in final else None

    return poll(finished, timeout=120, interval=0.5, what="the housekeeping run")


def test_retention_expires_old_jobs_and_leaves_younger_ones(
    lifecycle_engine: Engine, user: str, stageout_s3: S3Server
):
    api = lifecycle_engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    old_url, old_id, old = _run(api, "echo", {"message": "old"})
    assert old["status"] == "successful", old
    old_run = flow_run_id(lifecycle_engine.prefect_api_url, old_id, lifecycle_engine.prefect_auth)
    expires = _time(old["expires"])
    assert expires - _time(old["finished"]) == dt.timedelta(seconds=RETENTION_S)
    poll(lambda: dt.datetime.now(dt.UTC) > expires, timeout=30, what="the old job's expiry")
    young_url, young_id, young = _run(api, "echo", {"message": "young"})
    assert young["status"] == "successful", young

    # As of just after the old job's expiry: the young one ended after it, so its own
    # expiry is later still.
    run = _housekeeping(lifecycle_engine, expires + dt.timedelta(seconds=RETENTION_S / 4))
    assert run["state"]["type"] == "COMPLETED", run

    body = assert_ogc_exception(requests.get(f"{old_url}/results", timeout=30), 410)
    assert body["type"] == f"{P1_EXC}/results-expired"
    assert "retention" in body["detail"]
    assert stageout_s3.keys("eoepca", f"processing-results/{old_id}/") == []
    status = requests.get(old_url, timeout=30).json()
    assert status["status"] == "successful" and status["expires"] == old["expires"]

    assert requests.get(f"{young_url}/results", timeout=30).status_code == 200
    assert stageout_s3.keys("eoepca", f"processing-results/{young_id}/") == [
        f"processing-results/{young_id}/said/said.txt"
    ]

    # OAPIP_JOB_PURGE_DAYS after its results expired, the old job's record goes too; the
    # young one, which ended after the old one expired, is not due yet (`expires` is
    # given to the millisecond: 10 ms more is past the old job's exact time).
    purge = expires + dt.timedelta(seconds=RETENTION_S, milliseconds=10)
    assert _housekeeping(lifecycle_engine, purge)["state"]["type"] == "COMPLETED"
    for url in (old_url, f"{old_url}/results", f"{old_url}/logs"):
        assert_ogc_exception(requests.get(url, timeout=30), 404, f"{P1_EXC}/no-such-job")
    assert _prefect(lifecycle_engine, "GET", f"/flow_runs/{old_run}").status_code == 404
    assert requests.get(f"{young_url}/results", timeout=30).status_code == 200


def test_the_housekeeping_deployment_has_its_schedule(lifecycle_engine: Engine):
    deployment = _deployment(lifecycle_engine)
    intervals = [s["schedule"].get("interval") for s in deployment["schedules"]]
    assert intervals == [86400.0], deployment["schedules"]
    _housekeeping(lifecycle_engine, dt.datetime.now(dt.UTC))
    runs = _prefect(
        lifecycle_engine,
        "POST",
        "/flow_runs/filter",
        flow_runs={"deployment_id": {"any_": [deployment["id"]]}},
    ).json()
    assert [r for r in runs if r["state"]["type"] == "COMPLETED"], runs


def test_housekeeping_runs_one_at_a_time(lifecycle_engine: Engine):
    """Two runs due at once (the schedule's and one started by hand, or a long run's
    successor): the deployment runs one and cancels the other, rather than both at once.
    Both are created in one transaction, so the deployment's runner finds them in the
    same poll and starts both."""
    deployment = _deployment(lifecycle_engine)
    as_of = {"as_of": dt.datetime.now(dt.UTC).isoformat()}
    runs = [{"parameters": as_of, "idempotency_key": str(uuid.uuid4())} for _ in range(2)]

    def created() -> list[dict[str, Any]] | None:
        # SQLite refuses a transaction that meets another writer (503, or "database is
        # locked" per run): sent again, a run already made comes back by its key.
        response = requests.post(
            f"{lifecycle_engine.prefect_api_url}/deployments/{deployment['id']}"
            "/create_flow_run/bulk",
            json=runs,
            auth=lifecycle_engine.prefect_auth,
            timeout=30,
        )
        if response.status_code == 503:
            return None
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        return results if all(r["status"] == "CREATED" for r in results) else None

    results = poll(created, timeout=60, interval=0.5, what="the housekeeping runs created")

    runs = [_finished(lifecycle_engine, r["flow_run_id"]) for r in results]

    states = sorted(r["state"]["type"] for r in runs)
    assert states == ["CANCELLED", "COMPLETED"], [r["state"] for r in runs]
    (cancelled,) = [r for r in runs if r["state"]["type"] == "CANCELLED"]
    assert "concurrency limit" in cancelled["state"]["message"]
    history = _prefect(lifecycle_engine, "GET", f"/flow_run_states/?flow_run_id={cancelled['id']}")
    assert "RUNNING" not in [state["type"] for state in history.json()]  # never ran


# --- housekeeping at scale --------------------------------------------------------------


def test_housekeeping_purges_more_jobs_than_a_page(
    lifecycle_engine: Engine, user: str, stageout_s3: S3Server
):
    """Jobs are read a page at a time and deleted in bulk: more jobs than a page (and
    than one bulk delete), long past their time, all go in one housekeeping run, with
    their artifacts and their results, which no earlier run had expired."""
    engine = lifecycle_engine
    api = engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    runs = finished_jobs(engine.prefect_api_url, engine.prefect_auth, user, _PAGE + _BULK + 10)
    assert len(runs) == _PAGE + _BULK + 10
    with_results = [*runs][:: len(runs) // 3]
    for job in with_results:
        stageout_s3.put("eoepca", f"processing-results/{job}/said/said.txt", b"said")
        artifact = _prefect(
            engine, "POST", "/artifacts", type="markdown", data="x", flow_run_id=runs[job]["id"]
        )
        assert artifact.status_code == 201, artifact.text

    last = max(_time(r["end_time"]) for r in runs.values())
    run = _housekeeping(engine, last + dt.timedelta(seconds=3 * RETENTION_S))
    assert run["state"]["type"] == "COMPLETED", run
    assert job_runs(engine.prefect_api_url, engine.prefect_auth, user) == {}
    for job in with_results:
        assert stageout_s3.keys("eoepca", f"processing-results/{job}/") == []
    run_ids = [runs[job]["id"] for job in with_results]
    of_runs = {"artifacts": {"flow_run_id": {"any_": run_ids}}}
    assert _prefect(engine, "POST", "/artifacts/filter", **of_runs).json() == []
    assert_ogc_exception(
        requests.get(f"{api}/jobs/{with_results[-1]}", timeout=30), 404, f"{P1_EXC}/no-such-job"
    )
