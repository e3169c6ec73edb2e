"""Configured secrets never show: not in job status, results, errors, logs, flow-run
parameters or anything else the Prefect API (and so its UI) serves about a job.

``own_engine`` runs with the secret settings of ``SECRETS`` set in its environment.
"""

from __future__ import annotations

import json
import uuid

import requests

from tests.conftest import Engine
from tests.security.conftest import SECRETS
from tests.support import (
    ECHO_CWL,
    FAILING_WORKFLOW_CWL,
    FINAL,
    deploy_cwl,
    execute_async,
    flow_run_id,
    wait_for_status,
)


def _prefect(engine: Engine, method: str, path: str, body: dict | None = None) -> str:
    response = requests.request(
        method, engine.prefect_api_url + path, json=body, auth=engine.prefect_auth, timeout=30
    )
    assert response.status_code == 200, (path, response.text)
    return response.text


def test_secrets_appear_nowhere(own_engine: Engine):
    api = own_engine.api(f"secrets-{uuid.uuid4().hex[:6]}")
    seen: dict[str, str] = {}

    deploy_cwl(api, ECHO_CWL)
    deploy_cwl(api, FAILING_WORKFLOW_CWL)
    jobs = {
        "ok": execute_async(api, "echo", {"message": "hello"}).headers["Location"],
        "failed": execute_async(api, "two-steps", {"word": "hi"}).headers["Location"],
    }
    for name, url in jobs.items():
        body = wait_for_status(url, FINAL, timeout=90)
        seen[f"status {name}"] = json.dumps(body)
        seen[f"results {name}"] = requests.get(f"{url}/results", timeout=30).text
    seen["job list"] = requests.get(f"{api}/jobs", timeout=30).text
    seen["processes"] = requests.get(f"{api}/processes", timeout=30).text
    seen["package"] = requests.get(f"{api}/processes/echo/package", timeout=30).text
    seen["error"] = requests.post(
        f"{api}/processes", data=b"{", headers={"Content-Type": "application/json"}, timeout=30
    ).text

    # What the Prefect UI shows: flow runs (parameters, job variables, state messages),
    # their states, logs, deployments and the package blocks.
    run_ids = [
        flow_run_id(own_engine.prefect_api_url, url.rsplit("/", 1)[1], own_engine.prefect_auth)
        for url in jobs.values()
    ]
    for run_id in run_ids:
        seen[f"flow run {run_id}"] = _prefect(own_engine, "GET", f"/flow_runs/{run_id}")
        seen[f"states {run_id}"] = _prefect(
            own_engine, "GET", f"/flow_run_states/?flow_run_id={run_id}"
        )
    seen["logs"] = _prefect(
        own_engine, "POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": run_ids}}}
    )
    assert "hello" in seen["logs"] or json.loads(seen["logs"]), "no logs were read"
    seen["deployments"] = _prefect(own_engine, "POST", "/deployments/filter", {})
    seen["blocks"] = _prefect(own_engine, "POST", "/block_documents/filter", {})
    seen["variables"] = _prefect(own_engine, "POST", "/variables/filter", {})
    for log in ("gateway", "worker", "prefect-server"):
        seen[f"{log}.log"] = "\n".join(own_engine.log_lines(log))

    leaks = [
        (where, name)
        for where, text in seen.items()
        for name, value in SECRETS.items()
        if value in text
    ]
    assert not leaks, f"secrets in clear: {leaks}"
