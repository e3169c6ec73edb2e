"""The housekeeping flow on the session's real stack: how it walks a long history
(``flows.housekeeping._pages``: with a page of a few runs, every job is read once while
what was read is changed, tagged as expiring does or deleted as purging does, between
pages); that it expires the jobs of a process with its own retention on a site that
keeps results for ever (the session's engine sets no ``OAPIP_JOB_RETENTION_DAYS``); and
the pace it keeps (``flows.housekeeping._Pace``): a rest after each call.

The whole policy, on S3 with a site-wide retention, is in ``test_lifecycle_e2e.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.settings import temporary_settings

from core.times import parse_time
from flows.housekeeping import _FINAL, _each, _jobs_filter, _Pace, _pages
from tests.conftest import Engine
from tests.support import (
    ECHO_CWL,
    P1_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    finished_jobs,
    flow_run_id,
    job_runs,
    run_housekeeping,
    wait_for_status,
)

_JOBS = 23  # over several pages of 5, the last one short


def _walk(engine: Engine, user: str, change: str) -> list[list[uuid.UUID]]:
    """The ids of ``user``'s jobs, page by page, doing ``change`` (``tag`` or
    ``delete``) to each page's runs before the next is read."""

    async def walk() -> list[list[uuid.UUID]]:
        pages: list[list[uuid.UUID]] = []
        jobs = _jobs_filter(_FINAL)
        jobs.tags.all_ = [*jobs.tags.all_, f"user:{user}"]
        async with get_client() as client:
            async for page in _pages(client, jobs, dt.datetime.now(dt.UTC)):
                pages.append([r.id for r in page])
                for run in page:
                    if change == "tag":
                        await client.update_flow_run(run.id, tags=[*run.tags, "seen"])
                    else:
                        await client.delete_flow_run(run.id)
        return pages

    with temporary_settings(updates=engine.prefect_settings()):
        return asyncio.run(walk())


@pytest.mark.parametrize("change", ["tag", "delete"])
def test_every_job_is_read_once_while_pages_change(
    engine: Engine, api: str, user: str, change: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("flows.housekeeping._PAGE", 5)
    deploy_cwl(api, ECHO_CWL)
    runs = finished_jobs(engine.prefect_api_url, engine.prefect_auth, user, _JOBS)

    pages = _walk(engine, user, change)

    read = [run_id for page in pages for run_id in page]
    assert sorted(map(str, read)) == sorted(r["id"] for r in runs.values())
    assert len(pages) == -(-_JOBS // 5)
    end_of = {r["id"]: dt.datetime.fromisoformat(r["end_time"]) for r in runs.values()}
    ends = [end_of[str(run_id)] for run_id in read]
    assert ends == sorted(ends, reverse=True)  # newest first
    left = job_runs(engine.prefect_api_url, engine.prefect_auth, user)
    if change == "tag":
        assert all("seen" in r["tags"] for r in left.values()) and len(left) == _JOBS
    else:
        assert left == {}


def test_a_process_retention_expires_jobs_on_a_site_that_keeps_results(engine: Engine, user: str):
    api = engine.api(user)
    brief = {"executionUnit": {"value": ECHO_CWL.replace("id: echo", "id: brief")}}
    response = requests.post(
        f"{api}/processes",
        data=json.dumps({**brief, "jobRetentionDays": 2 / 86400}),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    deploy_cwl(api, ECHO_CWL)
    jobs = {}
    for process_id in ("brief", "echo"):
        created = execute_async(api, process_id, {"message": process_id})
        assert created.status_code == 201, created.text
        jobs[process_id] = wait_for_status(created.headers["Location"])
        assert jobs[process_id]["status"] == "successful", jobs[process_id]
    assert "expires" not in jobs["echo"]  # the site's: kept until deleted

    # A day after the brief job's expiry: it is due, the echo job never is.
    as_of = parse_time(jobs["brief"]["expires"]) + dt.timedelta(days=1)
    run = run_housekeeping(engine.prefect_api_url, engine.prefect_auth, as_of)
    assert run["state"]["type"] == "COMPLETED", run

    results = engine.home / "results" / "processing-results"
    brief_id, echo_id = jobs["brief"]["jobID"], jobs["echo"]["jobID"]
    assert_ogc_exception(
        requests.get(f"{api}/jobs/{brief_id}/results", timeout=30),
        410,
        f"{P1_EXC}/results-expired",
    )
    brief_run = flow_run_id(engine.prefect_api_url, brief_id, engine.prefect_auth)
    tags = requests.get(
        f"{engine.prefect_api_url}/flow_runs/{brief_run}", auth=engine.prefect_auth, timeout=30
    ).json()["tags"]
    assert "results-expired" in tags
    assert not (results / brief_id).exists()
    assert requests.get(f"{api}/jobs/{echo_id}/results", timeout=30).status_code == 200
    assert (results / echo_id / "said" / "said.txt").exists()


@pytest.mark.parametrize("duty", [0.25, 0.5, 1.0])
def test_calls_are_made_one_at_a_time_with_a_rest_in_proportion(duty: float):
    calls, running = [], []

    async def call(item: int) -> None:
        running.append(item)
        assert len(running) == 1  # alone
        await asyncio.sleep(0.05)
        calls.append(item)
        running.remove(item)

    pace = _Pace(duty)
    started = time.monotonic()
    asyncio.run(_each(pace, [1, 2, 3, 4], call))
    took = time.monotonic() - started

    assert calls == [1, 2, 3, 4]
    assert pace.worked_s >= 4 * 0.05
    assert pace.rested_s == pytest.approx(pace.worked_s * (1 - duty) / duty)
    assert took >= pace.worked_s + pace.rested_s - 0.01  # the rests were taken
