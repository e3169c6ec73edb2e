"""Finished jobs put straight into Prefect, for the benchmarks that need a long history.

Prefect creates finished runs through its API at 20-70 a second on the shared 2-core
machine (100 a ``create_flow_run/bulk`` call; its server is one process), so 100,000
would take most of an hour. On PostgreSQL the first ``_API_RUNS`` are made through the
API and the rest are copies of those rows made in SQL (``_COPY_SQL``): the same columns,
a new id, jobID and state row each, shifted back in time so that the API's runs stay
the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid

import httpx
import psutil

from core.naming import job_tag, job_tags

__all__ = ["cpu_seconds", "fill_history", "prefect_auth", "wait_until_quiet"]

_BULK = 100  # runs per call (Prefect's BULK_CREATE_LIMIT)
_AT_ONCE = 4  # calls at once
_API_RUNS = 1000  # runs made through the API when the rest can be copied in SQL
_COPY_SQL = """
BEGIN;
CREATE TEMP TABLE template ON COMMIT DROP AS
  SELECT * FROM flow_run
  WHERE tags @> '["oapip", "user:bench"]'::jsonb AND state_type = 'COMPLETED';
CREATE TEMP TABLE copy ON COMMIT DROP AS
  SELECT t.id AS source, gen_random_uuid() AS id, gen_random_uuid() AS state_id,
         gen_random_uuid()::text AS job, make_interval(secs => g * 600) AS back
  FROM template t
  CROSS JOIN generate_series(1, ceil(:copies::numeric / (SELECT count(*) FROM template))::int) g
  LIMIT :copies;
INSERT INTO flow_run (
  id, created, updated, name, state_type, run_count, expected_start_time,
  next_scheduled_start_time, start_time, end_time, total_run_time, flow_version,
  parameters, idempotency_key, context, empirical_policy, tags, auto_scheduled, flow_id,
  deployment_id, parent_task_run_id, state_id, state_name, infrastructure_document_id,
  work_queue_name, state_timestamp, created_by, infrastructure_pid, work_queue_id,
  job_variables, deployment_version, labels)
SELECT c.id, t.created - c.back, t.updated - c.back, t.name, t.state_type, t.run_count,
  t.expected_start_time - c.back, t.next_scheduled_start_time - c.back,
  t.start_time - c.back, t.end_time - c.back, t.total_run_time, t.flow_version,
  t.parameters, c.job, t.context, t.empirical_policy,
  (SELECT jsonb_agg(tag) FROM jsonb_array_elements_text(t.tags) tag
   WHERE tag NOT LIKE 'job:%') || jsonb_build_array('job:' || c.job),
  t.auto_scheduled, t.flow_id, t.deployment_id, t.parent_task_run_id, NULL, t.state_name,
  t.infrastructure_document_id, t.work_queue_name, t.state_timestamp - c.back,
  t.created_by, t.infrastructure_pid, t.work_queue_id, t.job_variables,
  t.deployment_version, t.labels
FROM copy c JOIN template t ON t.id = c.source;
INSERT INTO flow_run_state (
  id, created, updated, type, timestamp, name, message, state_details, data, flow_run_id)
SELECT c.state_id, s.created - c.back, s.updated - c.back, s.type, s.timestamp - c.back,
  s.name, s.message, s.state_details, s.data, c.id
FROM copy c JOIN template t ON t.id = c.source JOIN flow_run_state s ON s.id = t.state_id;
UPDATE flow_run f SET state_id = c.state_id FROM copy c WHERE f.id = c.id;
COMMIT;
ANALYZE flow_run;
ANALYZE flow_run_state;
"""


def prefect_auth() -> tuple[str, str] | None:
    """The Prefect API's basic-auth credentials of the environment's stack (its
    ``PREFECT_API_AUTH_STRING``), for calls made without Prefect's client."""
    value = os.environ.get("PREFECT_API_AUTH_STRING")
    if not value:
        return None
    user, _, password = value.partition(":")
    return user, password


def fill_history(n: int, database_url: str | None = None) -> float:
    """Put ``n`` successful echo jobs of user ``bench`` in Prefect's history (against the
    Prefect API of the environment, ``PREFECT_API_URL``); seconds it took.

    Each job is made as the gateway's drainer makes one (its jobID as idempotency key
    and tag, the same tags and parameters), but created ``Completed``: up to 100 runs a
    ``POST /deployments/{id}/create_flow_run/bulk``, ``_AT_ONCE`` calls at once. With
    ``database_url`` (Prefect's PostgreSQL database), past ``_API_RUNS`` the rest are
    copies of those made in SQL (see the module docstring).
    """
    made = min(n, _API_RUNS) if database_url else n
    api = os.environ["PREFECT_API_URL"].rstrip("/")

    def run_body(i: int) -> dict:
        job_id = str(uuid.uuid4())
        return {
            "parameters": {"inputs": {"message": str(i)}},
            "tags": [*job_tags("bench", "echo"), job_tag(job_id)],
            "name": "echo",
            "idempotency_key": job_id,
            "state": {"type": "COMPLETED", "name": "Completed"},
        }

    async def fill() -> None:
        async with httpx.AsyncClient(base_url=api, auth=prefect_auth(), timeout=300) as http:
            r = await http.get("/deployments/name/ogc-execute/echo@bench")
            r.raise_for_status()
            url = f"/deployments/{r.json()['id']}/create_flow_run/bulk"
            gate = asyncio.Semaphore(_AT_ONCE)

            async def one(start: int) -> None:
                body = [run_body(i) for i in range(start, min(made, start + _BULK))]
                async with gate:
                    r = await http.post(url, json=body)
                r.raise_for_status()
                refused = [x["error"] for x in r.json()["results"] if x["status"] != "CREATED"]
                if refused:
                    raise RuntimeError(f"Prefect refused {len(refused)} runs: {refused[0]}")

            await asyncio.gather(*(one(start) for start in range(0, made, _BULK)))

    started = time.perf_counter()
    asyncio.run(fill())
    if database_url and n > made:
        subprocess.run(
            [
                "psql",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"copies={n - made}",
                database_url.replace("+asyncpg", ""),
            ],
            input=_COPY_SQL,
            text=True,
            check=True,
        )
    return time.perf_counter() - started


def wait_until_quiet(pid: int, *, below: float = 0.15, timeout: float = 600) -> float:
    """Wait until process ``pid`` and its children use less than ``below`` of a core
    over 5 s (the Prefect server's services work through the events of a fill behind
    it); seconds waited."""
    started = time.perf_counter()
    process = psutil.Process(pid)
    while time.perf_counter() - started < timeout:
        procs = [process, *process.children(recursive=True)]
        before = cpu_seconds(procs)
        time.sleep(5.0)
        if (cpu_seconds(procs) - before) / 5.0 < below:
            break
    return time.perf_counter() - started


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU seconds ``procs`` have used, with their children that ended (user and
    system); one that ended itself counts none."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += sum(proc.cpu_times()[:4])
    return total
