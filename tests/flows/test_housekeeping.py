"""How the housekeeping flow walks a long history (``flows.housekeeping._pages``), on the
session's real stack: with a page of a few runs, every job is read once while what was
read is changed (tagged, as expiring does, or deleted, as purging does) between pages.

The whole flow, run by its deployment, is in ``test_lifecycle_e2e.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import temporary_settings

from flows.housekeeping import _FINAL, _jobs_filter, _pages
from tests.conftest import Engine
from tests.support import ECHO_CWL, deploy_cwl, finished_jobs, job_runs

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
