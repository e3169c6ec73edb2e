"""Jobs through the gateway with S3 on both sides (the ``s3_engine`` stack).

Inputs come from the stage-in moto server and a loopback web server; results go to the
stage-out moto server: the shared ``eoepca`` bucket for users without a workspace, or
``ws-<user>`` for users the Workspace API stand-in knows (see ``s3_engine``).
"""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pystac
import pytest
import requests

from tests.conftest import CONVERTED, Engine, FileServer, free_port, tiny_png
from tests.ogc_schemas import validate
from tests.s3_server import S3Server, WorkspaceApiStandIn
from tests.support import (
    ECHO_CWL,
    assert_ogc_exception,
    converted_item,
    deploy_cwl,
    execute_async,
    flow_run_id,
    poll,
)
from tests.support import wait_for_status as _wait

# A tool that reads a File and a staged STAC Directory, and writes the STAC back out.
INSPECT_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: inspect
label: Inspect
baseCommand: [sh, -c]
arguments:
  - cat "$0" > report.txt && cp -r "$1" result
  - $(inputs.doc.path)
  - $(inputs.scene.path)
inputs:
  doc: File
  scene: Directory
outputs:
  report:
    type: File
    outputBinding:
      glob: report.txt
  stac_catalog:
    type: Directory
    outputBinding:
      glob: result
"""


def wait_for_status(url: str) -> dict[str, Any]:
    return _wait(url, timeout=120)


def _job(created: requests.Response) -> tuple[str, str]:
    assert created.status_code == 201, created.text
    return created.headers["Location"], created.json()["jobID"]


def _results(job_url: str) -> dict[str, Any]:
    response = requests.get(f"{job_url}/results", timeout=30)
    assert response.status_code == 200, response.text
    results = response.json()
    validate(results, "results")
    return results


def test_the_walkthrough_leaves_the_png_in_the_stage_out_bucket(
    app_packages: Path, s3_engine: Engine, user: str, png_url: str, stageout_s3: S3Server
):
    api = s3_engine.api(user)
    deploy_cwl(
        api, (app_packages / "convert-url-app.cwl").read_text(), media_type="application/cwl"
    )
    job_url, job_id = _job(
        execute_async(api, "convert-url", {"fn": "resize", "url": png_url, "size": "50%"})
    )
    final = wait_for_status(job_url)
    assert final["status"] == "successful", final

    # eoepca/convert's catalog.json, item and image, published on S3.
    catalog = _results(job_url)["converted_image"]
    prefix = f"processing-results/{job_id}/converted_image"
    assert catalog["href"] == f"s3://eoepca/{prefix}/catalog.json"
    assert stageout_s3.keys("eoepca", f"processing-results/{job_id}/") == [
        f"{prefix}/{name}" for name in CONVERTED
    ]
    _, image = converted_item(catalog, stageout_s3.get)
    assert image["href"] == f"s3://eoepca/{prefix}/logo-resize.png"
    assert stageout_s3.get(image["href"]) == tiny_png()

    # The flow run keeps a link artifact (Prefect stores links as markdown) to the results.
    def artifact_links() -> list[str]:
        artifacts = requests.post(
            f"{s3_engine.prefect_api_url}/artifacts/filter",
            auth=s3_engine.prefect_auth,
            json={
                "artifacts": {
                    "flow_run_id": {
                        "any_": [
                            flow_run_id(s3_engine.prefect_api_url, job_id, s3_engine.prefect_auth)
                        ]
                    }
                }
            },
            timeout=30,
        ).json()
        # Link artifacts hold text; the progress artifact a number.
        return [a["data"] for a in artifacts if isinstance(a.get("data"), str)]

    links = poll(artifact_links, timeout=10, what="a link artifact")
    assert any(f"s3://eoepca/processing-results/{job_id}/" in link for link in links), links


def test_an_s3_file_and_a_stac_item_in_a_stac_catalog_out(
    s3_engine: Engine,
    user: str,
    file_server: FileServer,
    stagein_s3: S3Server,
    stageout_s3: S3Server,
):
    tag = uuid.uuid4().hex[:8]
    bucket = stagein_s3.create_bucket(f"in-{tag}")
    doc = stagein_s3.put(bucket, "docs/readme.txt", "from the stage-in bucket")
    item = pystac.Item(
        id=f"scene-{tag}",
        geometry={"type": "Point", "coordinates": [-4.8, 53.9]},
        bbox=[-4.8, 53.9, -4.8, 53.9],
        datetime=datetime.datetime(2023, 11, 21, tzinfo=datetime.UTC),
        properties={},
    )
    item.add_asset("B04", pystac.Asset(file_server.add(f"b04-{tag}.tif", b"band 4")))
    item_url = file_server.add(f"item-{tag}.json", json.dumps(item.to_dict()))
    api = s3_engine.api(user)
    deploy_cwl(api, INSPECT_CWL)

    job_url, job_id = _job(execute_async(api, "inspect", {"doc": {"href": doc}, "scene": item_url}))
    final = wait_for_status(job_url)
    assert final["status"] == "successful", final

    results = _results(job_url)
    assert stageout_s3.get(results["report"]["href"]) == b"from the stage-in bucket"
    published = results["stac_catalog"]
    assert published["type"] == "Catalog"
    assert published["href"] == (
        f"s3://eoepca/processing-results/{job_id}/stac_catalog/catalog.json"
    )
    catalog = stageout_s3.read_catalog(published["href"])
    catalog.validate_all()
    [staged] = list(catalog.get_all_items())
    assert staged.id == item.id
    href = staged.assets["B04"].href
    assert href.startswith(f"s3://eoepca/processing-results/{job_id}/stac_catalog/")
    assert stageout_s3.get(href) == b"band 4"


def test_workspace_users_get_results_in_their_own_buckets(
    s3_engine: Engine, stageout_s3: S3Server, workspace_api: WorkspaceApiStandIn
):
    users = [f"alice{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"]
    jobs = {}
    for user in users:
        workspace_api.register(user, stageout_s3)
        api = s3_engine.api(user)
        deploy_cwl(api, ECHO_CWL)
        jobs[user] = _job(execute_async(api, "echo", {"message": f"hello {user}"}))
    for user, (job_url, job_id) in jobs.items():
        assert wait_for_status(job_url)["status"] == "successful"
        said = _results(job_url)["said"]["href"]
        assert said == f"s3://ws-{user}/processing-results/{job_id}/said/said.txt"
        assert stageout_s3.get(said) == f"hello {user}\n".encode()
        assert not stageout_s3.keys("eoepca", f"processing-results/{job_id}")
    alice, bob = users
    assert stageout_s3.keys(f"ws-{alice}") == [f"processing-results/{jobs[alice][1]}/said/said.txt"]
    assert stageout_s3.keys(f"ws-{bob}") == [f"processing-results/{jobs[bob][1]}/said/said.txt"]


@pytest.mark.parametrize("case", ["input 404", "unknown bucket", "endpoint down"])
def test_failures_end_the_job_failed_with_a_clear_message(
    s3_engine: Engine,
    file_server: FileServer,
    stagein_s3: S3Server,
    stageout_s3: S3Server,
    workspace_api: WorkspaceApiStandIn,
    case: str,
):
    user = f"fail{uuid.uuid4().hex[:6]}"
    bucket = stagein_s3.create_bucket(f"in-{uuid.uuid4().hex[:8]}")
    doc = stagein_s3.put(bucket, "readme.txt", "here")
    missing = f"{file_server.url}/no-such-item-{uuid.uuid4().hex}.json"
    expected = {
        "input 404": ["input 'scene'", missing, "does not exist"],
        "unknown bucket": [f"bucket 'ws-{user}' does not exist"],
        "endpoint down": ["unreachable after retries"],
    }[case]
    if case == "unknown bucket":
        workspace_api.register(user, stageout_s3, create_bucket=False)
    if case == "endpoint down":
        down = S3Server(f"http://127.0.0.1:{free_port()}", "k", "s")
        workspace_api.register(user, down, create_bucket=False)
    api = s3_engine.api(user)
    deploy_cwl(api, INSPECT_CWL)
    scene = missing if case == "input 404" else file_server.add("empty.json", "{}")

    job_url, job_id = _job(execute_async(api, "inspect", {"doc": doc, "scene": scene}))
    final = wait_for_status(job_url)

    assert final["status"] == "failed", final
    for words in expected:
        assert words in final["message"], final
    assert f"{user}-secret" not in final["message"]
    body = assert_ogc_exception(requests.get(f"{job_url}/results", timeout=30), 500)
    assert expected[0] in body["detail"]
    assert not stageout_s3.keys("eoepca", f"processing-results/{job_id}")
