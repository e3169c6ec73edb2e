"""Helpers the engine tests share: polling with deadlines, OGC checks, small CWL packages.

Everything here talks to a running engine over real HTTP (``requests``); nothing is
mocked. The CWL documents are tiny tools that run on the host (no container), so a
test controls exactly how long a job runs and how it ends.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from unittest import mock

import requests

import cwlpkg as cwl
from blocks.backend import CwlJob
from core.settings import Settings
from tests.ogc_schemas import validate_if_available

__all__ = [
    "settings_from",
    "ECHO_CWL",
    "IMAGE_TOOL_CWL",
    "LogLines",
    "cwl_job",
    "FAILING_WORKFLOW_CWL",
    "FINAL",
    "P1_EXC",
    "P2_EXC",
    "assert_ogc_exception",
    "converted_item",
    "deploy_cwl",
    "execute_async",
    "finished_jobs",
    "finished_run",
    "housekeeping_deployment",
    "job_runs",
    "poll",
    "result_bytes",
    "run_housekeeping",
    "sleep_cwl",
    "wait_for_status",
]

P1_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
P2_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"
FINAL = ("successful", "failed", "dismissed")
HTTP_TIMEOUT_S = 30.0


def converted_item(
    catalog: dict[str, Any], read: Callable[[str], bytes]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The STAC item eoepca/convert writes, and its ``output`` asset (the image), from the
    published catalog that is the ``converted_image`` result; ``read`` gets a URL's bytes."""
    [link] = [link for link in catalog["links"] if link["rel"] == "item"]
    item = json.loads(read(link["href"]))
    return item, item["assets"]["output"]


def poll(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Call ``check`` until it returns something truthy or ``timeout`` seconds pass.

    Returns the truthy value; on timeout raises ``AssertionError`` naming ``what`` and
    the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def wait_for_status(
    url: str, statuses: Iterable[str] = FINAL, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll a job status URL until its ``status`` is one of ``statuses``; return the body.

    Every statusInfo seen on the way is validated against the OGC schema (when the
    reference material is there, `tests.reference`).
    """
    wanted = tuple(statuses)
    seen: list[str] = []

    def check() -> dict[str, Any] | None:
        response = requests.get(url, timeout=HTTP_TIMEOUT_S)
        assert response.status_code == 200, (response.status_code, response.text)
        body = response.json()
        validate_if_available(body, "statusInfo")
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        return body if body["status"] in wanted else None

    try:
        return poll(check, timeout=timeout, interval=0.1, what=f"status in {wanted} at {url}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; statuses seen: {seen}") from None


def assert_ogc_exception(
    response: requests.Response, status: int, type_uri: str | None = None
) -> dict[str, Any]:
    """Check an error response: status code, ``application/json``, OGC exception body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == "application/json", response.headers
    body = response.json()
    validate_if_available(body, "exception")
    assert body["status"] == status, body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if type_uri is not None:
        assert body["type"] == type_uri, body
    return body


def result_bytes(href: str) -> bytes:
    """The content of a result the results document links to, over HTTP from the gateway
    (results in the local store are served there, never as host paths)."""
    assert href.startswith("http"), href
    response = requests.get(href, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 200, (href, response.status_code, response.text[:300])
    return response.content


def deploy_cwl(api: str, cwl_text: str, *, media_type: str = "application/cwl+yaml") -> str:
    """Deploy a CWL document as a process of the user ``api`` belongs to; return its id."""
    response = requests.post(
        f"{api}/processes",
        data=cwl_text.encode(),
        headers={"Content-Type": media_type},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def execute_async(
    api: str, process_id: str, inputs: dict[str, Any], *, response: str | None = "document"
) -> requests.Response:
    """``POST …/execution`` with ``Prefer: respond-async``; the HTTP response.

    The job's results are asked as the results document (``response``), which the tests
    read output by output; ``None`` sends no ``response``: the standard's default, raw.
    """
    body: dict[str, Any] = {"inputs": inputs}
    if response is not None:
        body["response"] = response
    return requests.post(
        f"{api}/processes/{process_id}/execution",
        json=body,
        headers={"Prefer": "respond-async"},
        timeout=HTTP_TIMEOUT_S,
    )


# --- small CWL packages ----------------------------------------------------------------

ECHO_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: echo
label: Echo
doc: Writes its message to a file.
baseCommand: echo
inputs:
  message:
    type: string
    inputBinding:
      position: 1
outputs:
  said:
    type: stdout
stdout: said.txt
"""


def sleep_cwl(process_id: str, seconds: str) -> str:
    """A Workflow whose one step sleeps ``seconds`` (a unique figure marks its process)."""
    return f"""\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: {process_id}
    label: Sleeper
    inputs:
      marker:
        type: string
        default: unused
    outputs:
      out:
        type: File
        outputSource: nap/out
    steps:
      nap:
        run: "#nap"
        in:
          marker: marker
        out: [out]
  - class: CommandLineTool
    id: nap
    baseCommand: [sleep, "{seconds}"]
    inputs:
      marker: string
    outputs:
      out:
        type: stdout
"""


FAILING_WORKFLOW_CWL = """\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: two-steps
    label: Two steps, the second fails
    inputs:
      word:
        type: string
    outputs:
      final:
        type: File
        outputSource: explode/out
    steps:
      greet:
        run: "#say"
        in:
          word: word
        out: [out]
      explode:
        run: "#boom"
        in:
          previous: greet/out
        out: [out]
  - class: CommandLineTool
    id: say
    baseCommand: echo
    inputs:
      word:
        type: string
        inputBinding:
          position: 1
    outputs:
      out:
        type: stdout
  - class: CommandLineTool
    id: boom
    baseCommand: [sh, -c, "echo boom >&2; exit 3"]
    inputs:
      previous: File
    outputs:
      out:
        type: stdout
"""


IMAGE_TOOL_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: {id}
requirements:
  DockerRequirement:
    dockerPull: {image}
baseCommand: [sh, -c]
arguments: ["{script}"]
inputs: []
outputs:
  out:
    type: stdout
"""
"""A tool that runs ``script`` in ``image`` (``.format(id=, image=, script=)``)."""


class LogLines(logging.Handler):
    """Keeps the messages of the records it handles, for a test to read."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def cwl_job(
    source: str | dict[str, Any],
    inputs: dict[str, Any],
    workdir: Path,
    logger: logging.Logger | None = None,
    *,
    process_id: str | None = None,
    job_id: str | None = None,
) -> CwlJob:
    """A backend job for a CWL document (text or parsed) and OGC ``inputs``, as the
    execution flow builds one."""
    doc = cwl.parse_document(source) if isinstance(source, str) else source
    process_id = process_id or cwl.select_workflow(doc, None)
    packed = cwl.pack(doc, process_id)
    return CwlJob(
        job_id=job_id or f"test-{random.randint(0, 10**9)}",
        process_id=process_id,
        workflow=packed,
        entrypoint=cwl.entrypoint(packed),
        job_order=cwl.job_order(doc, process_id, inputs),
        workdir=workdir,
        logger=logger or logging.getLogger("test.cwl"),
    )


def settings_from(env: dict[str, str]) -> Settings:
    """The engine's settings as a process whose whole environment is ``env`` reads them."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def flow_run_id(prefect_api_url: str, job_id: str, auth: tuple[str, str]) -> str:
    """The id of the flow run of the job ``job_id``: the run whose idempotency key it is
    (a job submitted through the OGC API), else the job id itself (a scheduled run).
    ``auth``: the stack's Prefect credentials (``Engine.prefect_auth``)."""
    runs = requests.post(
        f"{prefect_api_url}/flow_runs/filter",
        auth=auth,
        json={"flow_runs": {"idempotency_key": {"any_": [job_id]}}, "limit": 1},
        timeout=HTTP_TIMEOUT_S,
    ).json()
    return runs[0]["id"] if runs else job_id


def finished_jobs(
    prefect_api_url: str, auth: tuple[str, str], user: str, n: int
) -> dict[str, dict[str, Any]]:
    """``n`` successful echo jobs of ``user`` (whose ``echo`` is deployed) put straight
    into Prefect, as the drainer creates a job's run but ``Completed``, 100 a call; their
    flow runs by jobID. ``auth``: the stack's Prefect credentials."""
    deployment = requests.get(
        f"{prefect_api_url}/deployments/name/ogc-execute/echo@{user}",
        auth=auth,
        timeout=HTTP_TIMEOUT_S,
    ).json()
    jobs = [str(uuid.uuid4()) for _ in range(n)]
    for start in range(0, n, 100):
        body = [
            {
                "parameters": {"inputs": {"message": job}},
                "tags": ["oapip", f"user:{user}", "process:echo", f"job:{job}"],
                "name": "echo",
                "idempotency_key": job,
                "state": {"type": "COMPLETED"},
            }
            for job in jobs[start : start + 100]
        ]
        # On SQLite a run can be refused while another writer holds the database
        # ("database is locked"): those are sent again (the key makes that safe).
        for _ in range(10):
            created = requests.post(
                f"{prefect_api_url}/deployments/{deployment['id']}/create_flow_run/bulk",
                json=body,
                auth=auth,
                timeout=120,
            )
            assert created.status_code == 200, created.text[:500]
            results = created.json()["results"]
            body = [b for b, r in zip(body, results, strict=True) if r["status"] != "CREATED"]
            if not body:
                break
        assert not body, results[0]["error"][:500]
    return {job: run for job, run in job_runs(prefect_api_url, auth, user).items() if job in jobs}


def job_runs(prefect_api_url: str, auth: tuple[str, str], user: str) -> dict[str, dict[str, Any]]:
    """Every flow run of ``user``'s jobs, by jobID (its idempotency key)."""
    runs: list[dict[str, Any]] = []
    while True:
        page = requests.post(
            f"{prefect_api_url}/flow_runs/filter",
            json={
                "flow_runs": {"tags": {"all_": [f"user:{user}"]}},
                "sort": "ID_DESC",
                "offset": len(runs),
                "limit": 200,
            },
            auth=auth,
            timeout=HTTP_TIMEOUT_S,
        ).json()
        runs.extend(page)
        if len(page) < 200:
            return {r["idempotency_key"]: r for r in runs}


def housekeeping_deployment(prefect_api_url: str, auth: tuple[str, str]) -> dict[str, Any]:
    """The housekeeping deployment, once its process (every stack serves it) has created
    it. ``auth``: the stack's Prefect credentials."""

    def found() -> dict[str, Any] | None:
        r = requests.get(
            f"{prefect_api_url}/deployments/name/oapip-housekeeping/housekeeping",
            auth=auth,
            timeout=HTTP_TIMEOUT_S,
        )
        return r.json() if r.status_code == 200 else None

    return poll(found, timeout=60, what="the housekeeping deployment")


def run_housekeeping(
    prefect_api_url: str, auth: tuple[str, str], as_of: dt.datetime
) -> dict[str, Any]:
    """Run the housekeeping deployment now, as of ``as_of``; its finished flow run."""
    deployment = housekeeping_deployment(prefect_api_url, auth)
    key = str(uuid.uuid4())

    def created() -> requests.Response | None:
        # SQLite answers 503 while another writer holds it (after a burst of writes).
        run = requests.post(
            f"{prefect_api_url}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": {"as_of": as_of.isoformat()}, "idempotency_key": key},
            auth=auth,
            timeout=HTTP_TIMEOUT_S,
        )
        return None if run.status_code == 503 else run

    run = poll(created, timeout=60, interval=0.5, what="the housekeeping run created")
    assert run.status_code == 201, run.text
    return finished_run(prefect_api_url, auth, run.json()["id"])


def finished_run(prefect_api_url: str, auth: tuple[str, str], run_id: str) -> dict[str, Any]:
    """Flow run ``run_id`` once it has ended (completed, failed, crashed or cancelled)."""

    def finished() -> dict[str, Any] | None:
        response = requests.get(
            f"{prefect_api_url}/flow_runs/{run_id}", auth=auth, timeout=HTTP_TIMEOUT_S
        )
        body = response.json() if response.status_code == 200 else {"state": {"type": None}}
        final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        return body if body["state"]["type"] in final else None

    return poll(finished, timeout=120, interval=0.5, what=f"flow run {run_id} to end")
