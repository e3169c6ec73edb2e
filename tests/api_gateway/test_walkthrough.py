"""The acceptance walkthrough (README "Walkthrough with curl"), over real HTTP, on SQLite
and on PostgreSQL.

The real ``convert-url`` application package and request bodies of the EOEPCA deployment
guide, from the reference folder ``app-packages/`` (``tests.reference``; package ``href``
and image URL rewritten to the loopback file server); the package's tool is the
stand-in ``convert.sh`` from ``conftest``.
Every OGC document the engine answers with is validated against the OGC schemas (the
raw result is the output's own document, a STAC catalog).
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.conftest import BOTH_ENGINES, CONVERTED, Engine, FileServer, tiny_png
from tests.ogc_schemas import validate
from tests.support import (
    P1_EXC,
    assert_ogc_exception,
    converted_item,
    result_bytes,
    wait_for_status,
)


@BOTH_ENGINES
def test_walkthrough(
    app_packages: Path, any_engine: Engine, user: str, file_server: FileServer, png_url: str
):
    api = any_engine.api(user)

    landing = requests.get(f"{api}/", timeout=30)
    assert landing.status_code == 200
    validate(landing.json(), "landingPage")
    conformance = requests.get(f"{api}/conformance", timeout=30)
    validate(conformance.json(), "confClasses")

    # 1. the list: a new user has only the built-in echo
    listing = requests.get(f"{api}/processes", timeout=30)
    assert listing.status_code == 200
    validate(listing.json(), "processList")
    assert [(p["id"], p["mutable"]) for p in listing.json()["processes"]] == [("echo", False)]

    # 2. deploy by href
    deploy_body = json.loads((app_packages / "convert-url-deploy-request.json").read_text())
    deploy_body["executionUnit"]["href"] = f"{file_server.url}/convert-url-app.cwl"
    deployed = requests.post(
        f"{api}/processes",
        data=json.dumps(deploy_body),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=60,
    )
    assert deployed.status_code == 201, deployed.text
    assert deployed.headers["Location"] == f"{api}/processes/convert-url"
    validate(deployed.json(), "processSummary")
    listing = requests.get(f"{api}/processes", timeout=30).json()
    validate(listing, "processList")
    assert [p["id"] for p in listing["processes"]] == ["convert-url", "echo"]

    # 3. describe
    description = requests.get(deployed.headers["Location"], timeout=30)
    assert description.status_code == 200
    process = description.json()
    validate(process, "process")
    assert process["id"] == "convert-url"
    assert process["version"] == "0.1.2"
    assert set(process["inputs"]) == {"fn", "url", "size"}
    assert set(process["outputs"]) == {"converted_image"}

    # 4. execute asynchronously
    execute_body = json.loads((app_packages / "convert-url-execute-request.json").read_text())
    execute_body["inputs"]["url"] = png_url
    created = requests.post(
        f"{api}/processes/convert-url/execution",
        json=execute_body,
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    status = created.json()
    validate(status, "statusInfo")
    job_url = created.headers["Location"]
    assert job_url == f"{api}/jobs/{status['jobID']}"
    assert status["processID"] == "convert-url"

    # 5. poll until the job ends
    final = wait_for_status(job_url, timeout=90)
    assert final["status"] == "successful", (final, any_engine.log_tail())
    assert final["progress"] == 100
    assert final["created"] <= final["started"] <= final["finished"]
    jobs = requests.get(f"{api}/jobs", timeout=30).json()
    validate(jobs, "jobList")
    assert [j["jobID"] for j in jobs["jobs"]] == [status["jobID"]]

    # 6. results: eoepca/convert writes the image, its STAC item and catalog.json; the
    # result is that catalog, published with the job's URLs. The execute request named no
    # `response`: raw, the standard's default, so the one output is the body, the bare
    # catalog (as ZOO-Project answers), its URL in the Link header.
    response = requests.get(f"{job_url}/results", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    catalog = response.json()
    assert catalog["type"] == "Catalog"
    # Served by the gateway under the job's URL, not as a path of the engine's host.
    folder = f"{job_url}/results/converted_image/"
    assert catalog["href"] == f"{folder}catalog.json"
    [link] = requests.utils.parse_header_links(response.headers["Link"])
    assert link == {
        "url": catalog["href"],
        "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
        "title": "converted_image",
    }
    item, image = converted_item(catalog, result_bytes)
    assert item["type"] == "Feature"
    assert image["href"] == f"{folder}logo-resize.png"
    assert image["type"] == "image/png"
    stored = requests.get(image["href"], timeout=30)
    assert stored.status_code == 200
    assert stored.headers["content-type"] == "image/png"
    assert stored.content == tiny_png()
    listing = requests.get(folder, timeout=30).json()
    assert sorted(f["href"] for f in listing["files"]) == [folder + n for n in CONVERTED]

    # 7. undeploy
    undeployed = requests.delete(f"{api}/processes/convert-url", timeout=30)
    assert undeployed.status_code == 204
    gone = requests.get(f"{api}/processes/convert-url", timeout=30)
    assert_ogc_exception(gone, 404, f"{P1_EXC}/no-such-process")
    # The job and its results outlive the process.
    assert requests.get(f"{job_url}/results", timeout=30).status_code == 200
