"""``/jobs``: filters, paging links that keep the filters, dismiss of finished jobs.

One module-scoped set of jobs for one user: four echo jobs, one failed two-step job
and one 2.5 s sleeper, all finished before the first test asks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests.conftest import BOTH_ENGINES, Engine
from tests.ogc_schemas import validate
from tests.support import (
    ECHO_CWL,
    FAILING_WORKFLOW_CWL,
    P1_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    sleep_cwl,
    wait_for_status,
)

ECHOES = 4
SLOW_S = 2.5


@dataclass
class History:
    api: str
    echo: list[str]
    failed: str
    slow: str
    before: dt.datetime
    after: dt.datetime
    durations: dict[str, float]  # job id -> seconds from `started` to `finished`

    @property
    def threshold(self) -> float:
        """A duration (s) just under the slow job's: it alone lasts at least this long."""
        return round(self.durations[self.slow] - 0.25, 3)

    def lasting(self, at_least: float | None = None, at_most: float | None = None) -> set[str]:
        return {
            job_id
            for job_id, seconds in self.durations.items()
            if (at_least is None or seconds >= at_least) and (at_most is None or seconds <= at_most)
        }

    @property
    def all(self) -> set[str]:
        return {*self.echo, self.failed, self.slow}


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def history(engine: Engine) -> History:
    api = engine.api(f"jobs-{uuid.uuid4().hex[:8]}")
    deploy_cwl(api, ECHO_CWL)
    deploy_cwl(api, FAILING_WORKFLOW_CWL)
    deploy_cwl(api, sleep_cwl("slow", str(SLOW_S)))
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    urls = {}
    for i in range(ECHOES):
        urls[f"echo{i}"] = execute_async(api, "echo", {"message": f"m{i}"}).headers["Location"]
    urls["failed"] = execute_async(api, "two-steps", {"word": "w"}).headers["Location"]
    urls["slow"] = execute_async(api, "slow", {}).headers["Location"]
    finals = {name: wait_for_status(url, timeout=90) for name, url in urls.items()}
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert finals["failed"]["status"] == "failed"
    assert all(f["status"] == "successful" for n, f in finals.items() if n != "failed"), finals
    return History(
        api=api,
        echo=[finals[f"echo{i}"]["jobID"] for i in range(ECHOES)],
        failed=finals["failed"]["jobID"],
        slow=finals["slow"]["jobID"],
        before=before,
        after=after,
        durations={f["jobID"]: _seconds(f["started"], f["finished"]) for f in finals.values()},
    )


def _seconds(start: str, end: str) -> float:
    def parse(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def _jobs(url: str, params: dict | None = None) -> dict:
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    document = response.json()
    validate(document, "jobList")
    return document


def _ids(document: dict) -> list[str]:
    return [job["jobID"] for job in document["jobs"]]


def _link(document: dict, rel: str) -> str | None:
    return next((link["href"] for link in document["links"] if link["rel"] == rel), None)


def test_list_holds_every_job_newest_first(history: History):
    document = _jobs(f"{history.api}/jobs", {"limit": 100})
    assert set(_ids(document)) == history.all
    created = [job["created"] for job in document["jobs"]]
    assert created == sorted(created, reverse=True)
    for job in document["jobs"]:
        validate(job, "statusInfo")
    assert _link(document, "next") is None


def test_filter_by_process_id(history: History):
    assert set(_ids(_jobs(f"{history.api}/jobs", {"processID": "echo"}))) == set(history.echo)
    both = _jobs(f"{history.api}/jobs", {"processID": ["echo", "slow"]})
    assert set(_ids(both)) == {*history.echo, history.slow}
    assert _ids(_jobs(f"{history.api}/jobs", {"processID": "no-such-process"})) == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("failed", "failed"),
        ("successful", "successful"),
        ("successful,failed", "all"),
        ("running", "none"),
        ("dismissed", "none"),
    ],
)
def test_filter_by_status(history: History, status: str, expected: str):
    wanted = {
        "failed": {history.failed},
        "successful": {*history.echo, history.slow},
        "all": history.all,
        "none": set(),
    }[expected]
    document = _jobs(f"{history.api}/jobs", {"status": status, "limit": 100})
    assert set(_ids(document)) == wanted
    for job in document["jobs"]:
        assert job["status"] in status.split(",")


def test_filter_by_unknown_status_is_400(history: History):
    response = requests.get(f"{history.api}/jobs", params={"status": "finished"}, timeout=30)
    assert_ogc_exception(response, 400)


def test_filter_by_type(history: History):
    assert set(_ids(_jobs(f"{history.api}/jobs", {"type": "process", "limit": 100}))) == (
        history.all
    )
    assert _ids(_jobs(f"{history.api}/jobs", {"type": "openeo"})) == []


def test_filter_by_datetime(history: History):
    url = f"{history.api}/jobs"
    inside = f"{_rfc3339(history.before)}/{_rfc3339(history.after)}"
    assert set(_ids(_jobs(url, {"datetime": inside, "limit": 100}))) == history.all
    long_ago = history.before - dt.timedelta(days=1)
    past = f"{_rfc3339(long_ago)}/{_rfc3339(long_ago + dt.timedelta(hours=1))}"
    assert _ids(_jobs(url, {"datetime": past})) == []
    assert set(_ids(_jobs(url, {"datetime": f"{_rfc3339(long_ago)}/..", "limit": 100}))) == (
        history.all
    )
    assert _ids(_jobs(url, {"datetime": f"../{_rfc3339(long_ago)}"})) == []
    future = _rfc3339(history.after + dt.timedelta(days=1))
    assert _ids(_jobs(url, {"datetime": f"{future}/.."})) == []


def test_filter_by_malformed_datetime_is_400(history: History):
    response = requests.get(f"{history.api}/jobs", params={"datetime": "yesterday"}, timeout=30)
    assert_ogc_exception(response, 400)


def test_filter_by_duration(history: History):
    url = f"{history.api}/jobs"
    assert history.durations[history.slow] >= SLOW_S
    cut = history.threshold
    slow = _jobs(url, {"minDuration": cut, "limit": 100})
    assert set(_ids(slow)) == history.lasting(at_least=cut)
    assert history.slow in _ids(slow)
    quick = _jobs(url, {"maxDuration": cut, "limit": 100})
    assert set(_ids(quick)) == history.lasting(at_most=cut)
    assert history.slow not in _ids(quick)
    assert _ids(_jobs(url, {"minDuration": 3600})) == []
    between = _jobs(url, {"minDuration": 0, "maxDuration": 3600, "processID": "slow"})
    assert _ids(between) == [history.slow]


def test_paging_keeps_filters(history: History):
    first = _jobs(f"{history.api}/jobs", {"processID": "echo", "status": "successful", "limit": 3})
    assert len(first["jobs"]) == 3
    assert _link(first, "prev") is None
    next_url = _link(first, "next")
    assert next_url is not None
    query = parse_qs(urlparse(next_url).query)
    assert query["processID"] == ["echo"]
    assert query["status"] == ["successful"]
    assert query["limit"] == ["3"]

    second = _jobs(next_url)
    assert len(second["jobs"]) == ECHOES - 3
    assert not set(_ids(first)) & set(_ids(second))
    assert set(_ids(first)) | set(_ids(second)) == set(history.echo)
    assert _link(second, "next") is None
    prev_url = _link(second, "prev")
    assert prev_url is not None
    assert parse_qs(urlparse(prev_url).query)["processID"] == ["echo"]
    assert _ids(_jobs(prev_url)) == _ids(first)


def test_paging_with_a_duration_filter(history: History):
    url = f"{history.api}/jobs"
    cut = history.threshold
    first = _jobs(url, {"maxDuration": cut, "limit": 2})
    next_url = _link(first, "next")
    assert next_url is not None
    assert parse_qs(urlparse(next_url).query)["maxDuration"] == [str(cut)]
    second = _jobs(next_url)
    third = _jobs(_link(second, "next")) if _link(second, "next") else {"jobs": []}
    seen = _ids(first) + _ids(second) + _ids(third)
    assert len(seen) == len(set(seen))
    assert set(seen) == history.lasting(at_most=cut)


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "100000"])
def test_bad_limit_is_400(history: History, limit: str):
    response = requests.get(f"{history.api}/jobs", params={"limit": limit}, timeout=30)
    assert_ogc_exception(response, 400)


@BOTH_ENGINES
def test_dismiss_a_finished_job_removes_it(any_engine: Engine, user: str):
    api = any_engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    job_url = execute_async(api, "echo", {"message": "bye"}).headers["Location"]
    job_id = wait_for_status(job_url, ["successful"], timeout=60)["jobID"]
    response = requests.delete(job_url, timeout=30)
    assert response.status_code == 200, response.text
    status = response.json()
    validate(status, "statusInfo")
    assert status["status"] == "dismissed"
    assert status["jobID"] == job_id
    assert_ogc_exception(requests.get(job_url, timeout=30), 404, f"{P1_EXC}/no-such-job")
    assert_ogc_exception(
        requests.get(f"{job_url}/results", timeout=30), 404, f"{P1_EXC}/no-such-job"
    )
    assert job_id not in _ids(_jobs(f"{api}/jobs"))
