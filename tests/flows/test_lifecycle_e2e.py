"""A job's end of life on a real stack with S3 (moto): clean failure, delete, retention.

``s3_engine`` (the session's S3 stack) runs the default policy: partial results are
removed, results are kept until a DELETE. ``lifecycle_engine``, started here, keeps
failed jobs' outputs (``OAPIP_KEEP_FAILED_OUTPUTS``) and expires results after an hour
(``OAPIP_JOB_RETENTION_DAYS``), longer than its tests run: housekeeping runs started
``as_of`` later apply it, and processes deployed with a shorter ``jobRetentionDays`` (a
few seconds) expire their jobs' results for real.
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
    HTTP_TIMEOUT_S,
    P1_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    finished_jobs,
    finished_run,
    flow_run_id,
    housekeeping_deployment,
    job_runs,
    poll,
    run_housekeeping,
    sleep_cwl,
    wait_for_status,
)

RETENTION_S = 3600.0  # the lifecycle engine's retention of results (and purge), seconds
BRIEF_S = 2.0  # the own retention of the `brief` process, seconds
DAY_S = 86400
BRIEF_CWL = ECHO_CWL.replace("id: echo", "id: brief")

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
        "OAPIP_JOB_RETENTION_DAYS": str(RETENTION_S / DAY_S),
        "OAPIP_JOB_PURGE_DAYS": str(RETENTION_S / DAY_S),
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


def _housekeeping(engine: Engine, as_of: dt.datetime) -> dict[str, Any]:
    return run_housekeeping(engine.prefect_api_url, engine.prefect_auth, as_of)


def _deploy(
    api: str, cwl: str, retention_days: float | None, *, replace: str | None = None
) -> requests.Response:
    """Deploy (or, with ``replace``, replace that process with) ``cwl`` as an
    ``application/ogcapppkg+json`` body with ``jobRetentionDays``, unless None."""
    body: dict[str, Any] = {"executionUnit": {"value": cwl, "type": "application/cwl+yaml"}}
    if retention_days is not None:
        body["jobRetentionDays"] = retention_days
    return requests.request(
        "PUT" if replace else "POST",
        f"{api}/processes" + (f"/{replace}" if replace else ""),
        data=json.dumps(body),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=HTTP_TIMEOUT_S,
    )


def _kept_s(status: dict[str, Any]) -> float:
    """Seconds a job's status says it keeps its results after it ended."""
    return (_time(status["expires"]) - _time(status["finished"])).total_seconds()


def _run_tags(engine: Engine, job_id: str) -> list[str]:
    run = flow_run_id(engine.prefect_api_url, job_id, engine.prefect_auth)
    return _prefect(engine, "GET", f"/flow_runs/{run}").json()["tags"]


def test_retention_expires_old_jobs_and_leaves_younger_ones(
    lifecycle_engine: Engine, user: str, stageout_s3: S3Server
):
    api = lifecycle_engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    old_url, old_id, old = _run(api, "echo", {"message": "old"})
    assert old["status"] == "successful", old
    old_run = flow_run_id(lifecycle_engine.prefect_api_url, old_id, lifecycle_engine.prefect_auth)
    young_url, young_id, young = _run(api, "echo", {"message": "young"})
    assert young["status"] == "successful", young
    assert _kept_s(old) == _kept_s(young) == RETENTION_S

    # As of halfway between the two jobs' expiries: the old one's is past, the young
    # one's (it ended later) is not.
    expires = _time(old["expires"])
    between = expires + (_time(young["expires"]) - expires) / 2
    run = _housekeeping(lifecycle_engine, between)
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
    # young one's results have expired by then, its record stays.
    purge = between + dt.timedelta(seconds=RETENTION_S)
    assert _housekeeping(lifecycle_engine, purge)["state"]["type"] == "COMPLETED"
    for url in (old_url, f"{old_url}/results", f"{old_url}/logs"):
        assert_ogc_exception(requests.get(url, timeout=30), 404, f"{P1_EXC}/no-such-job")
    assert _prefect(lifecycle_engine, "GET", f"/flow_runs/{old_run}").status_code == 404
    assert requests.get(young_url, timeout=30).json()["expires"] == young["expires"]
    assert_ogc_exception(requests.get(f"{young_url}/results", timeout=30), 410)
    assert stageout_s3.keys("eoepca", f"processing-results/{young_id}/") == []


def test_the_housekeeping_deployment_has_its_schedule(lifecycle_engine: Engine):
    engine = lifecycle_engine
    deployment = housekeeping_deployment(engine.prefect_api_url, engine.prefect_auth)
    intervals = [s["schedule"].get("interval") for s in deployment["schedules"]]
    assert intervals == [86400.0], deployment["schedules"]
    _housekeeping(engine, dt.datetime.now(dt.UTC))
    runs = _prefect(
        engine,
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
    engine = lifecycle_engine
    deployment = housekeeping_deployment(engine.prefect_api_url, engine.prefect_auth)
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

    runs = [
        finished_run(engine.prefect_api_url, engine.prefect_auth, r["flow_run_id"]) for r in results
    ]

    states = sorted(r["state"]["type"] for r in runs)
    assert states == ["CANCELLED", "COMPLETED"], [r["state"] for r in runs]
    (cancelled,) = [r for r in runs if r["state"]["type"] == "CANCELLED"]
    assert "concurrency limit" in cancelled["state"]["message"]
    history = _prefect(lifecycle_engine, "GET", f"/flow_run_states/?flow_run_id={cancelled['id']}")
    assert "RUNNING" not in [state["type"] for state in history.json()]  # never ran


# --- retention per process ----------------------------------------------------------------


def test_a_process_keeps_its_jobs_results_for_its_own_retention(
    lifecycle_engine: Engine, user: str, stageout_s3: S3Server
):
    """``brief`` keeps results for a few seconds, ``echo`` for the site's hour: a
    housekeeping run just past the brief job's expiry expires it (results 410, objects
    gone, run tagged) and leaves the echo job that ended after it."""
    api = lifecycle_engine.api(user)
    assert _deploy(api, BRIEF_CWL, BRIEF_S / DAY_S).status_code == 201
    deploy_cwl(api, ECHO_CWL)
    brief_url, brief_id, brief = _run(api, "brief", {"message": "brief"})
    echo_url, echo_id, echo = _run(api, "echo", {"message": "kept"})
    assert brief["status"] == echo["status"] == "successful", (brief, echo)
    assert _kept_s(brief) == BRIEF_S and _kept_s(echo) == RETENTION_S
    assert "retention:2s" in _run_tags(lifecycle_engine, brief_id)  # from its deployment

    as_of = _time(brief["expires"]) + dt.timedelta(seconds=BRIEF_S / 2)
    assert _housekeeping(lifecycle_engine, as_of)["state"]["type"] == "COMPLETED"

    body = assert_ogc_exception(requests.get(f"{brief_url}/results", timeout=30), 410)
    assert body["type"] == f"{P1_EXC}/results-expired"
    assert stageout_s3.keys("eoepca", f"processing-results/{brief_id}/") == []
    assert "results-expired" in _run_tags(lifecycle_engine, brief_id)
    assert requests.get(brief_url, timeout=30).json()["expires"] == brief["expires"]

    assert requests.get(f"{echo_url}/results", timeout=30).status_code == 200
    assert stageout_s3.keys("eoepca", f"processing-results/{echo_id}/") == [
        f"processing-results/{echo_id}/said/said.txt"
    ]
    assert "results-expired" not in _run_tags(lifecycle_engine, echo_id)


def test_results_are_gone_at_their_expiry_before_housekeeping_runs(
    lifecycle_engine: Engine, user: str, stageout_s3: S3Server
):
    """Results never outlive the ``expires`` a job's status gave: past it they answer
    410, though no housekeeping run has removed them yet."""
    api = lifecycle_engine.api(user)
    assert _deploy(api, BRIEF_CWL, BRIEF_S / DAY_S).status_code == 201
    url, job_id, final = _run(api, "brief", {"message": "brief"})
    assert final["status"] == "successful", final
    expires = _time(final["expires"])
    poll(
        lambda: dt.datetime.now(dt.UTC) > expires + dt.timedelta(milliseconds=10),
        timeout=30,
        what="the job's expiry",
    )

    body = assert_ogc_exception(requests.get(f"{url}/results", timeout=30), 410)
    assert body["type"] == f"{P1_EXC}/results-expired"
    assert f"expired at {final['expires']}" in body["detail"], body
    assert "run the job again" in body["detail"], body
    # Housekeeping has not been there: the run is not tagged, the objects are still there.
    assert "results-expired" not in _run_tags(lifecycle_engine, job_id)
    assert stageout_s3.keys("eoepca", f"processing-results/{job_id}/") != []


def test_replace_changes_the_retention_of_new_jobs(lifecycle_engine: Engine, user: str):
    """A job keeps the retention its process had when it ran; a replaced process's new
    jobs have the new one (or the site's, when the replacement names none)."""
    api = lifecycle_engine.api(user)
    assert _deploy(api, BRIEF_CWL, BRIEF_S / DAY_S).status_code == 201
    first_url, _, first = _run(api, "brief", {"message": "first"})

    assert _deploy(api, BRIEF_CWL, 60 / DAY_S, replace="brief").status_code == 204
    _, _, second = _run(api, "brief", {"message": "second"})
    assert _deploy(api, BRIEF_CWL, None, replace="brief").status_code == 204
    _, _, third = _run(api, "brief", {"message": "third"})

    assert [_kept_s(first), _kept_s(second), _kept_s(third)] == [BRIEF_S, 60, RETENTION_S]
    assert requests.get(first_url, timeout=30).json()["expires"] == first["expires"]


@pytest.mark.parametrize("factor", [1, 0.5])
def test_a_process_may_keep_results_as_long_as_the_site_or_shorter(
    lifecycle_engine: Engine, user: str, factor: float
):
    api = lifecycle_engine.api(user)
    response = _deploy(api, BRIEF_CWL, factor * RETENTION_S / DAY_S)
    assert response.status_code == 201, response.text


def test_a_process_may_not_keep_results_longer_than_the_site(lifecycle_engine: Engine, user: str):
    api = lifecycle_engine.api(user)
    body = assert_ogc_exception(_deploy(api, BRIEF_CWL, 2 * RETENTION_S / DAY_S), 400)
    assert f"at most {RETENTION_S / DAY_S:g} days (OAPIP_JOB_RETENTION_DAYS)" in body["detail"]
    assert_ogc_exception(requests.get(f"{api}/processes/brief", timeout=30), 404)

    assert _deploy(api, BRIEF_CWL, None).status_code == 201
    replaced = _deploy(api, BRIEF_CWL, 2 * RETENTION_S / DAY_S, replace="brief")
    body = assert_ogc_exception(replaced, 400)
    assert f"at most {RETENTION_S / DAY_S:g} days" in body["detail"]


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
