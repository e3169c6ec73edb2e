"""Jobs on an HPC site: OGC API -> engine -> Toil WES (behind basic auth) -> Slurm, all real.

Processes are deployed with ``"executionEngine": "toil-wes-backend/<name>"``; the work
runs as Slurm jobs of the session's single-node cluster (``tests.hpc``), which the tests
find in Slurm's job-completion log and queue. Runs take tens of seconds each (Toil's
leader and workers are Python processes started per run and per job on two cores).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import Engine, FileServer, free_port
from tests.hpc import HPC_BLOCK, Hpc, save_backend_block
from tests.ogc_schemas import validate
from tests.support import (
    ECHO_CWL,
    FAILING_WORKFLOW_CWL,
    HTTP_TIMEOUT_S,
    assert_ogc_exception,
    converted_item,
    execute_async,
    flow_run_id,
    poll,
    result_bytes,
    wait_for_status,
)

RUN_TIMEOUT_S = 300.0

TWO_STEPS_CWL = """\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: shout-and-count
    label: Upper-case a text file, then count its bytes
    inputs:
      text:
        type: File
    outputs:
      shouted:
        type: File
        outputSource: shout/out
      counted:
        type: File
        outputSource: count/out
    steps:
      shout:
        run: "#upper"
        in:
          text: text
        out: [out]
      count:
        run: "#bytes"
        in:
          text: shout/out
        out: [out]
  - class: CommandLineTool
    id: upper
    baseCommand: [tr, a-z, A-Z]
    stdin: $(inputs.text.path)
    inputs:
      text: File
    outputs:
      out:
        type: stdout
    stdout: shouted.txt
  - class: CommandLineTool
    id: bytes
    baseCommand: [wc, -c]
    stdin: $(inputs.text.path)
    inputs:
      text: File
    outputs:
      out:
        type: stdout
    stdout: counted.txt
"""

LONG_SLEEP_CWL = """\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: long-nap
    inputs: {}
    outputs:
      out:
        type: File
        outputSource: nap/out
    steps:
      nap:
        run: "#nap"
        in: {}
        out: [out]
  - class: CommandLineTool
    id: nap
    baseCommand: [sleep, "900"]
    inputs: {}
    outputs:
      out:
        type: stdout
"""


def deploy_on(api: str, engine: str, *, cwl: str | None = None, href: str | None = None) -> str:
    """Deploy a package (inline CWL or by ``href``) to run on ``engine``; its process id."""
    unit = {"href": href, "type": "application/cwl"} if href else {"value": cwl}
    response = requests.post(
        f"{api}/processes",
        data=json.dumps({"executionUnit": unit, "executionEngine": engine}),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def flow_run_logs(engine: Engine, job_id: str) -> list[str]:
    logs = requests.post(
        f"{engine.prefect_api_url}/logs/filter",
        auth=engine.prefect_auth,
        json={
            "logs": {
                "flow_run_id": {
                    "any_": [flow_run_id(engine.prefect_api_url, job_id, engine.prefect_auth)]
                }
            },
            "limit": 200,
            "sort": "TIMESTAMP_ASC",
        },
        timeout=HTTP_TIMEOUT_S,
    ).json()
    return [log["message"] for log in logs]


def wes_run_id(engine: Engine, job_id: str) -> str:
    """The WES run of a job, as recorded in its flow-run logs."""

    def find() -> str | None:
        for message in flow_run_logs(engine, job_id):
            if match := re.search(r"submitted to Toil WES as run (\S+)", message):
                return match.group(1)
        return None

    return poll(find, timeout=60, interval=0.5, what=f"the WES run id of job {job_id}")


def wes_state(hpc: Hpc, run_id: str) -> str:
    answer = requests.get(
        f"{hpc.wes_url}runs/{run_id}/status", auth=(hpc.user, hpc.password), timeout=30
    )
    answer.raise_for_status()
    return answer.json()["state"]


def run_job(api: str, process_id: str, inputs: dict) -> tuple[str, dict]:
    created = execute_async(api, process_id, inputs)
    assert created.status_code == 201, created.text
    final = wait_for_status(created.headers["Location"], timeout=RUN_TIMEOUT_S)
    return created.json()["jobID"], final


@pytest.mark.usefixtures("app_packages")  # the file server serves convert-url-app.cwl
def test_convert_url_runs_as_slurm_jobs(
    hpc_engine: Engine, hpc: Hpc, user: str, file_server: FileServer, png_url: str
):
    api = hpc_engine.api(user)
    href = f"{file_server.url}/convert-url-app.cwl"
    assert deploy_on(api, HPC_BLOCK, href=href) == "convert-url"
    job_id, final = run_job(api, "convert-url", {"fn": "resize", "url": png_url, "size": "50%"})
    assert final["status"] == "successful", final

    results = requests.get(f"{api}/jobs/{job_id}/results", timeout=HTTP_TIMEOUT_S).json()
    validate(results, "results")
    # eoepca/convert's STAC catalog, in the local result store, served by the gateway
    # under the job's URL.
    _, image = converted_item(results["converted_image"], result_bytes)
    png = image["href"]
    assert png == f"{api}/jobs/{job_id}/results/converted_image/logo-resize.png"
    assert result_bytes(png) == (file_server.root / "logo.png").read_bytes()

    run_id = wes_run_id(hpc_engine, job_id)
    slurm_jobs = hpc.finished_slurm_jobs(run_id)
    assert slurm_jobs, f"no Slurm job of WES run {run_id} in the jobcomp log"
    assert {job["JobState"] for job in slurm_jobs} == {"COMPLETED"}, slurm_jobs
    assert any("convert" in job["Name"] for job in slurm_jobs), slurm_jobs
    # Slurm still knows the job (MinJobAge): its controller saw it run.
    shown = hpc.slurm("scontrol", "show", "job", slurm_jobs[0]["JobId"])
    assert "JobState=COMPLETED" in shown and run_id in shown
    # The run id is on the job (logs and a link artifact); Toil's log is in the flow's.
    messages = flow_run_logs(hpc_engine, job_id)
    assert any("wes: " in m and "toil" in m.lower() for m in messages), messages[-20:]
    artifacts = requests.post(
        f"{hpc_engine.prefect_api_url}/artifacts/filter",
        auth=hpc_engine.prefect_auth,
        json={
            "artifacts": {
                "flow_run_id": {
                    "any_": [
                        flow_run_id(hpc_engine.prefect_api_url, job_id, hpc_engine.prefect_auth)
                    ]
                }
            }
        },
        timeout=HTTP_TIMEOUT_S,
    ).json()
    # Link artifacts hold text; the progress artifact a number.
    links = [a["data"] for a in artifacts if isinstance(a.get("data"), str)]
    assert any(run_id in link for link in links), artifacts


def test_a_two_step_workflow_with_a_file_input(
    hpc_engine: Engine, hpc: Hpc, user: str, file_server: FileServer
):
    api = hpc_engine.api(user)
    text_url = file_server.add(f"words-{uuid.uuid4().hex[:6]}.txt", "hello hpc\n")
    assert deploy_on(api, HPC_BLOCK, cwl=TWO_STEPS_CWL) == "shout-and-count"
    job_id, final = run_job(api, "shout-and-count", {"text": {"href": text_url}})
    assert final["status"] == "successful", final

    results = requests.get(f"{api}/jobs/{job_id}/results", timeout=HTTP_TIMEOUT_S).json()
    assert result_bytes(results["shouted"]["href"]) == b"HELLO HPC\n"
    assert result_bytes(results["counted"]["href"]).decode().strip() == "10"
    run_id = wes_run_id(hpc_engine, job_id)
    assert hpc.finished_slurm_jobs(run_id), f"no Slurm job of WES run {run_id}"
    messages = "\n".join(flow_run_logs(hpc_engine, job_id))
    assert "main.shout" in messages and "main.count" in messages


def test_dismiss_cancels_the_wes_run_and_its_slurm_job(hpc_engine: Engine, hpc: Hpc, user: str):
    api = hpc_engine.api(user)
    deploy_on(api, HPC_BLOCK, cwl=LONG_SLEEP_CWL)
    created = execute_async(api, "long-nap", {})
    assert created.status_code == 201, created.text
    job_url, job_id = created.headers["Location"], created.json()["jobID"]
    run_id = wes_run_id(hpc_engine, job_id)

    def running_slurm_jobs() -> list[str]:
        lines = hpc.slurm("squeue", "-h", "-o", "%i %T %Z").splitlines()
        return [line.split()[0] for line in lines if run_id in line and " RUNNING " in line]

    (slurm_job,) = poll(
        running_slurm_jobs, timeout=RUN_TIMEOUT_S, interval=0.5, what="the Slurm job running"
    )
    response = requests.delete(job_url, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 200, response.text
    final = poll(
        lambda: (
            (body := requests.get(job_url, timeout=30).json()).get("finished")
            and body["status"] == "dismissed"
            and body
        ),
        timeout=240,
        interval=0.5,
        what="the job dismissed and finished",
    )
    validate(final, "statusInfo")
    # Dismissal returns once WES has the run cancelled, and Toil took its job with it.
    assert wes_state(hpc, run_id) == "CANCELED"
    poll(
        lambda: slurm_job not in hpc.queued_slurm_jobs(),
        timeout=30,
        what=f"Slurm job {slurm_job} gone",
    )
    messages = flow_run_logs(hpc_engine, job_id)
    assert any(f"cancelling Toil WES run {run_id}" in m for m in messages), messages[-10:]


# --- the three failures, each named in the job's message --------------------------------


def test_a_failing_tool_fails_the_job_with_its_stderr(hpc_engine: Engine, user: str):
    api = hpc_engine.api(user)
    deploy_on(api, HPC_BLOCK, cwl=FAILING_WORKFLOW_CWL)
    job_id, final = run_job(api, "two-steps", {"word": "hi"})
    assert final["status"] == "failed", final
    assert "the workflow failed on Toil WES" in final["message"], final
    assert "EXECUTOR_ERROR" in final["message"], final
    assert_ogc_exception(requests.get(f"{api}/jobs/{job_id}/results", timeout=HTTP_TIMEOUT_S), 500)


def test_wrong_credentials_fail_the_job_saying_so(hpc_engine: Engine, hpc: Hpc, user: str):
    block = save_backend_block(
        hpc_engine, "hpc-wrong-password", url=hpc.wes_url, user=hpc.user, password="not-it"
    )
    api = hpc_engine.api(user)
    deploy_on(api, block, cwl=ECHO_CWL)
    _, final = run_job(api, "echo", {"message": "hello"})
    assert final["status"] == "failed", final
    assert "refused the engine's credentials (HTTP 401)" in final["message"], final
    assert "not-it" not in final["message"]


def test_an_unreachable_wes_fails_the_job_after_retries(hpc_engine: Engine, user: str):
    url = f"http://127.0.0.1:{free_port()}/ga4gh/wes/v1/"  # nothing listens there
    block = save_backend_block(
        hpc_engine, "hpc-unreachable", url=url, user="u", password="p", retry_delay_s=0.1
    )
    api = hpc_engine.api(user)
    deploy_on(api, block, cwl=ECHO_CWL)
    _, final = run_job(api, "echo", {"message": "hello"})
    assert final["status"] == "failed", final
    assert "is unreachable: 4 attempts" in final["message"], final
    assert "connection refused" in final["message"], final


# --- choosing the engine at deploy time (no HPC site needed) ------------------------------


@pytest.mark.parametrize("engine_name", ["slurm", "toil wes", 3])
def test_deploy_refuses_an_unknown_execution_engine(api: str, engine_name: object):
    response = requests.post(
        f"{api}/processes",
        data=json.dumps({"executionUnit": {"value": ECHO_CWL}, "executionEngine": engine_name}),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=HTTP_TIMEOUT_S,
    )
    body = assert_ogc_exception(response, 400)
    assert "executionEngine must be one of calrissian, cwltool, toil" in body["detail"]


def test_deploy_on_toil_needs_a_configured_endpoint(api: str):
    response = requests.post(
        f"{api}/processes",
        data=json.dumps({"executionUnit": {"value": ECHO_CWL}, "executionEngine": "toil"}),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=HTTP_TIMEOUT_S,
    )
    body = assert_ogc_exception(response, 400)
    assert "OAPIP_TOIL_WES_URL" in body["detail"]


def test_a_missing_backend_block_fails_the_job_saying_so(api: str):
    deploy_on(api, "toil-wes-backend/no-such-site", cwl=ECHO_CWL)
    _, final = run_job(api, "echo", {"message": "hello"})
    assert final["status"] == "failed", final
    assert "toil-wes-backend/no-such-site" in final["message"], final


def test_packages_deploy_with_their_engine(app_packages: Path, api: str):
    # The real package still deploys and describes the same with an engine named.
    deploy_on(api, "cwltool", cwl=(app_packages / "convert-url-app.cwl").read_text())
    described = requests.get(f"{api}/processes/convert-url", timeout=HTTP_TIMEOUT_S).json()
    assert set(described["inputs"]) == {"fn", "url", "size"}
