"""Fair share on a real stack (issue 15): per-user running and queue limits, job time
limits, per-user maxima, and a crashed job's slot given back.

One engine of this module's own, with small limits: 2 running jobs per user, 6 accepted,
20 s per job, 3 processes and 1 schedule per user; the Toil WES test uses the session's
engine and HPC site (``tests.hpc``). Orders and overlaps are read from
Prefect's state history of the flow runs, never from timings measured here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.api_gateway.test_hpc_execution import (
    LONG_SLEEP_CWL,
    deploy_on,
    wes_run_id,
    wes_state,
)
from tests.conftest import Engine, FileServer, _running_engine
from tests.hpc import HPC_BLOCK, Hpc
from tests.support import (
    ECHO_CWL,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    flow_run_id,
    poll,
    sleep_cwl,
    wait_for_status,
)

MAX_RUNNING = 2
MAX_QUEUED = 6
MAX_JOB_S = 20


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, tool_bin: Path, file_server: FileServer
) -> Iterator[Engine]:
    env = {
        "OAPIP_USER_MAX_RUNNING": str(MAX_RUNNING),
        "OAPIP_USER_MAX_QUEUED": str(MAX_QUEUED),
        "OAPIP_MAX_JOB_SECONDS": str(MAX_JOB_S),
        "OAPIP_USER_MAX_PROCESSES": "3",
        "OAPIP_USER_MAX_SCHEDULES": "1",
    }
    home = tmp_path_factory.mktemp("oapip-home-limits")
    with _running_engine("limits", home, tool_bin, extra_env=env) as running:
        yield running


def _figure(low: int, high: int) -> str:
    """A sleep duration between ``low`` and ``high`` s that no other process uses."""
    return f"{random.randint(low, high - 1)}.{random.randint(10**6, 10**7 - 1)}"


def _states(engine: Engine, job_id: str) -> list[dict[str, Any]]:
    run_id = flow_run_id(engine.prefect_api_url, job_id, engine.prefect_auth)
    response = requests.get(
        f"{engine.prefect_api_url}/flow_run_states/",
        params={"flow_run_id": run_id},
        auth=engine.prefect_auth,
        timeout=30,
    )
    response.raise_for_status()
    return sorted(response.json(), key=lambda s: s["timestamp"])


def _ran(engine: Engine, job_id: str) -> tuple[str, str]:
    """When the job's run started (its RUNNING state) and ended (its final state)."""
    states = _states(engine, job_id)
    start = next(s["timestamp"] for s in states if s["type"] == "RUNNING")
    end = next(s["timestamp"] for s in states if s["type"] in ("COMPLETED", "FAILED", "CRASHED"))
    return start, end


def _most_at_once(intervals: list[tuple[str, str]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, step in events:  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


def _limit(engine: Engine, user: str) -> dict[str, Any]:
    response = requests.get(
        f"{engine.prefect_api_url}/v2/concurrency_limits/user:{user}",
        auth=engine.prefect_auth,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def _submit(api: str, process_id: str) -> str:
    created = execute_async(api, process_id, {"marker": "m"})
    assert created.status_code == 201, created.text
    return created.json()["jobID"]


def test_another_users_job_starts_before_a_backlog_and_the_limit_holds(limited: Engine):
    a, b = "fair-a", "fair-b"
    deploy_cwl(limited.api(a), sleep_cwl("nap", _figure(4, 6)))
    deploy_cwl(limited.api(b), ECHO_CWL)
    backlog = [_submit(limited.api(a), "nap") for _ in range(3 * MAX_RUNNING)]
    poll(
        lambda: _limit(limited, a)["active_slots"] == MAX_RUNNING,
        timeout=60,
        what="A's first jobs running",
    )
    waiting = requests.get(f"{limited.api(a)}/jobs/{backlog[-1]}", timeout=30).json()
    assert waiting["status"] == "accepted", waiting
    assert f"waiting: {MAX_RUNNING} of your jobs are running" in waiting["message"], waiting
    created = requests.post(
        f"{limited.api(b)}/processes/echo/execution",
        json={"inputs": {"message": "hello"}},
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    b_job = created.json()["jobID"]
    for job_id, api in [*((j, limited.api(a)) for j in backlog), (b_job, limited.api(b))]:
        final = wait_for_status(f"{api}/jobs/{job_id}", timeout=120)
        assert final["status"] == "successful", (final["message"], limited.log_tail())
    a_runs = {j: _ran(limited, j) for j in backlog}
    b_start, _ = _ran(limited, b_job)
    queued = [j for j in backlog if a_runs[j][0] > b_start]
    # Every A job that had not started when B's did was still queued behind the limit:
    # at least all but the first MAX_RUNNING started after B's job.
    assert len(queued) >= len(backlog) - MAX_RUNNING, (b_start, a_runs)
    assert _most_at_once(list(a_runs.values())) <= MAX_RUNNING, a_runs
    assert _limit(limited, a)["active_slots"] == 0


def test_past_the_queue_limit_execute_is_429_and_nothing_is_created(limited: Engine):
    user = "fair-queue"
    api = limited.api(user)
    deploy_cwl(api, sleep_cwl("nap", _figure(60, 90)))
    jobs = [_submit(api, "nap") for _ in range(MAX_RUNNING)]
    poll(lambda: _limit(limited, user)["active_slots"] == MAX_RUNNING, timeout=60, what="running")
    jobs += [_submit(api, "nap") for _ in range(MAX_QUEUED)]
    try:
        refused = execute_async(api, "nap", {"marker": "m"})
        body = assert_ogc_exception(refused, 429)
        assert "OAPIP_USER_MAX_QUEUED" in body["detail"], body
        assert int(refused.headers["Retry-After"]) > 0, refused.headers

        def created() -> int:
            return requests.post(
                f"{limited.prefect_api_url}/flow_runs/count",
                json={"flow_runs": {"tags": {"all_": [f"user:{user}"]}}},
                auth=limited.prefect_auth,
                timeout=30,
            ).json()

        # Accepted jobs reach Prefect from the outbox; the refused one never does.
        poll(lambda: created() == len(jobs), timeout=60, what="the accepted jobs' runs")
        assert created() == len(jobs)
    finally:
        for job_id in jobs:
            requests.delete(f"{api}/jobs/{job_id}", timeout=30)


def test_a_job_past_its_time_limit_fails_naming_it_and_its_tool_is_gone(limited: Engine):
    api = limited.api("fair-slow")
    figure = _figure(600, 900)
    deploy_cwl(api, sleep_cwl("nap", figure))
    job_id = _submit(api, "nap")
    (tool,) = poll(
        lambda: [
            p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", figure]
        ],
        timeout=60,
        what="the tool running",
    )
    final = wait_for_status(f"{api}/jobs/{job_id}", timeout=MAX_JOB_S + 60)
    assert final["status"] == "failed", final
    # Prefect's flow-run timeout and the worker's backstop (a job process that did not end
    # in time) both end it with one message naming the limit.
    assert f"time limit of {MAX_JOB_S} s" in final["message"], final["message"]
    # The job may read failed a moment before its process group is killed.
    poll(
        lambda: not tool.is_running() or tool.status() == psutil.STATUS_ZOMBIE,
        timeout=30,
        what="the tool gone",
    )


def test_a_crashed_jobs_slot_is_given_back(limited: Engine):
    user = "fair-crash"
    api = limited.api(user)
    figure = _figure(60, 90)
    deploy_cwl(api, sleep_cwl("nap", figure))
    job_id = _submit(api, "nap")
    (tool,) = poll(
        lambda: [
            p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", figure]
        ],
        timeout=60,
        what="the tool running",
    )
    assert _limit(limited, user)["active_slots"] == 1
    tool.parent().kill()  # the job process, as the OOM killer would
    final = wait_for_status(f"{api}/jobs/{job_id}", ["failed"], timeout=60)
    assert "SIGKILL" in final["message"], final
    poll(lambda: _limit(limited, user)["active_slots"] == 0, timeout=30, what="slot released")


def test_per_user_maxima_on_processes_and_schedules(limited: Engine):
    api = limited.api("fair-many")
    for n in range(3):
        deploy_cwl(api, ECHO_CWL.replace("id: echo", f"id: echo{n}"))
    refused = requests.post(
        f"{api}/processes",
        # Not `echo`: the built-in's id is free of the maximum.
        data=ECHO_CWL.replace("id: echo", "id: echo3").encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    assert "OAPIP_USER_MAX_PROCESSES" in assert_ogc_exception(refused, 403)["detail"]
    body = {"interval": 3600, "inputs": {"message": "tick"}, "active": False}
    first = requests.post(f"{api}/processes/echo0/schedules", json=body, timeout=30)
    assert first.status_code == 201, first.text
    second = requests.post(f"{api}/processes/echo1/schedules", json=body, timeout=30)
    assert "OAPIP_USER_MAX_SCHEDULES" in assert_ogc_exception(second, 403)["detail"]


@pytest.mark.timeout(900)  # the HPC site's start, Toil's slow runs, then the limit itself
def test_a_toil_wes_job_past_its_time_limit_is_cancelled_with_its_slurm_job(
    hpc_engine: Engine, hpc: Hpc, user: str
):
    """On the session's engine (site limit: a day): the tool's own CWL ToolTimeLimit
    lowers the job's limit, which ends it while its Slurm job runs."""
    limit_s = 120
    cwl = LONG_SLEEP_CWL.replace(
        '    baseCommand: [sleep, "900"]',
        f"    hints:\n      ToolTimeLimit:\n        timelimit: {limit_s}\n"
        '    baseCommand: [sleep, "900"]',
    )
    api = hpc_engine.api(user)
    deploy_on(api, HPC_BLOCK, cwl=cwl)
    created = execute_async(api, "long-nap", {})
    assert created.status_code == 201, created.text
    job_url, job_id = created.headers["Location"], created.json()["jobID"]
    run_id = wes_run_id(hpc_engine, job_id)

    def running_slurm_jobs() -> list[str]:
        lines = hpc.slurm("squeue", "-h", "-o", "%i %T %Z").splitlines()
        return [line.split()[0] for line in lines if run_id in line and " RUNNING " in line]

    (slurm_job,) = poll(running_slurm_jobs, timeout=limit_s, interval=0.5, what="Slurm job")
    final = wait_for_status(job_url, timeout=limit_s + 120)
    assert final["status"] == "failed", final
    assert f"time limit of {limit_s} s" in final["message"], final["message"]
    assert wes_state(hpc, run_id) == "CANCELED"
    poll(
        lambda: slurm_job not in hpc.queued_slurm_jobs(),
        timeout=30,
        what=f"Slurm job {slurm_job} gone",
    )
