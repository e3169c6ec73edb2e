"""OGC API - Processes clients from PyPI, unmodified, drive a process's whole life:
deploy -> describe -> execute -> poll -> results -> dismiss -> undeploy.

* OWSLib (``owslib.ogcapi.processes``): lists, describes and executes with its own
  methods; it has none for Part 2 or for jobs, so those requests go through the same
  client object's generic request method (``_request``), as its own methods do.
* ``ogc-api-processes-client`` (EOEPCA's, used by its OAPIP validation notebook): Part 1
  only; the deploy and undeploy are plain HTTP, as in that notebook.
* A Part 2 client (``unity-sps-ogc-processes-api-python-client``) is driven in
  ``test_part2_client.py``.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from ogc_api_processes_client.api_client_wrapper import ApiClientWrapper
from ogc_api_processes_client.configuration import Configuration
from owslib.ogcapi.processes import Processes

from tests.support import ECHO_CWL, poll

PACKAGE = {"executionUnit": {"value": ECHO_CWL, "mediaType": "application/cwl+yaml"}}
FINAL = ("successful", "failed", "dismissed")


def test_owslib_drives_a_process_from_deploy_to_undeploy(api: str) -> None:
    client = Processes(api)

    deployed = client._request(method="POST", path="processes", data=PACKAGE)
    assert deployed["id"] == "echo"
    assert [p["id"] for p in client.processes()] == ["echo"]
    assert client.process("echo")["inputs"]["message"]["schema"] == {"type": "string"}

    created = client.execute("echo", inputs={"message": "hello"}, async_=True)
    job_id = created["jobID"]
    assert client.response_headers["Location"].endswith(f"/jobs/{job_id}")
    status = poll(
        lambda: (s := client._request(path=f"jobs/{job_id}"))["status"] in FINAL and s,
        timeout=120,
        what="the job done",
    )
    assert status["status"] == "successful", status
    results = client._request(path=f"jobs/{job_id}/results")
    assert requests.get(results["said"]["href"], timeout=30).text == "hello\n"
    # Synchronous execution answers with the results themselves.
    client.headers.pop("Prefer", None)
    said = client.execute("echo", inputs={"message": "now"}, response="document")
    assert requests.get(said["said"]["href"], timeout=30).text == "now\n"

    dismissed = client._request(method="DELETE", path=f"jobs/{job_id}")
    assert dismissed["status"] == "dismissed"
    assert client._request(method="DELETE", path="processes/echo") == {}
    # The user's own echo is gone: the built-in one is back in its place.
    assert [(p["id"], p.get("mutable")) for p in client.processes()] == [("echo", False)]


def test_ogc_api_processes_client_drives_a_process(api: str) -> None:
    deployed = requests.post(f"{api}/processes", json=PACKAGE, timeout=60)
    assert deployed.status_code == 201, deployed.text
    client = ApiClientWrapper(configuration=Configuration(host=api))

    assert client.get_landing_page().links
    assert client.get_conformance_classes().conforms_to
    assert [p.id for p in client.get_processes().processes] == ["echo"]
    description = client.get_process_description("echo")
    assert description.id == "echo" and "message" in description.inputs

    status = client.execute_simple(
        "echo",
        {"inputs": {"message": "hello"}, "response": "document"},
        _headers={"Prefer": "respond-async"},
    )
    job_id = status.job_id

    def done() -> Any:
        current = client.get_status(job_id)
        return current if current.status.value in FINAL else None

    final = poll(done, timeout=120, what="the job done")
    assert final.status.value == "successful", final
    assert job_id in [job.job_id for job in client.get_jobs().jobs]
    results = client.get_result_simple(job_id)
    said = json.loads(results["said"].to_json())
    assert requests.get(said["href"], timeout=30).text == "hello\n"
    assert client.dismiss(job_id).status.value == "dismissed"

    assert requests.delete(f"{api}/processes/echo", timeout=30).status_code == 204
    # The built-in echo is back in the place of the user's own.
    assert [p.id for p in client.get_processes().processes] == ["echo"]
