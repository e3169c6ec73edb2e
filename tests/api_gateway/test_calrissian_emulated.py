"""convert-url end to end through the OGC API, run by Calrissian on an EMULATED Kubernetes.

The engine's stack (Prefect server, fast worker, gateway) runs with
``OAPIP_EXECUTION_ENGINE=calrissian`` and a kubeconfig pointing at the loopback stand-in of
the Kubernetes API (tests/k8s_api.py): the flow's execute task creates the job's
namespace and Calrissian Job there, the real ``calrissian`` runs the workflow, the tool
runs in podman, and the results are staged out to S3 (a moto server on loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infrastructure.containers.podman import PodmanService
from tests.conftest import Engine, FileServer, _running_engine
from tests.k8s_api import CALRISSIAN_IMAGE, EmulatedKubernetes
from tests.ogc_schemas import validate
from tests.s3_server import S3Server
from tests.support import converted_item, deploy_cwl, execute_async, wait_for_status


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, podman: PodmanService, calrissian_bin: Path
) -> Iterator[EmulatedKubernetes]:
    api = EmulatedKubernetes(
        tmp_path_factory.mktemp("k8s"),
        local_images={CALRISSIAN_IMAGE},
        local_path=[calrissian_bin],
        podman_env=podman.environment(),
    )
    api.start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def calrissian_engine(
    tmp_path_factory: pytest.TempPathFactory,
    tool_bin: Path,
    file_server: FileServer,
    cluster: EmulatedKubernetes,
    stageout_s3: S3Server,
) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("oapip-home-calrissian")
    env = {
        **stageout_s3.environment(""),
        "OAPIP_EXECUTION_ENGINE": "calrissian",
        "OAPIP_KUBECONFIG": str(cluster.kubeconfig(home / "kubeconfig")),
        "OAPIP_CALRISSIAN_IMAGE": CALRISSIAN_IMAGE,
    }
    with _running_engine("calrissian", home, tool_bin, extra_env=env) as running:
        yield running


@pytest.mark.usefixtures("app_packages")  # the file server serves convert-url-app.cwl
def test_convert_url_through_the_ogc_api_on_calrissian_emulated(
    calrissian_engine: Engine,
    cluster: EmulatedKubernetes,
    file_server: FileServer,
    png_url: str,
    stageout_s3: S3Server,
):
    api = calrissian_engine.api("k8s-user")
    deployed = requests.post(
        f"{api}/processes",
        json={
            "executionUnit": {
                "href": f"{file_server.url}/convert-url-app.cwl",
                "type": "application/cwl",
            }
        },
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=60,
    )
    assert deployed.status_code == 201, deployed.text

    created = requests.post(
        f"{api}/processes/convert-url/execution",
        json={"inputs": {"fn": "resize", "url": png_url, "size": "50%"}, "response": "document"},
        headers={"Prefer": "respond-async"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["jobID"]

    final = wait_for_status(created.headers["Location"], timeout=240)
    assert final["status"] == "successful", (
        final,
        calrissian_engine.log_tail(),
        cluster.diagnostics(),
    )

    results = requests.get(f"{created.headers['Location']}/results", timeout=30).json()
    validate(results, "results")
    # What the real eoepca/convert writes: the image, its STAC item and the catalog.
    catalog = results["converted_image"]
    prefix = f"processing-results/{job_id}/converted_image"
    assert catalog["href"] == f"s3://eoepca/{prefix}/catalog.json"
    _, image = converted_item(catalog, stageout_s3.get)
    png = image["href"]
    assert png.startswith(f"s3://eoepca/{prefix}/") and png.endswith("-resize.png")
    assert stageout_s3.get(png)[:8] == b"\x89PNG\r\n\x1a\n"
    # The job ran in a namespace of its own, through Calrissian, which is gone afterwards.
    created_namespaces = [
        p for m, p in cluster.requests if m == "POST" and p == "/api/v1/namespaces"
    ]
    assert created_namespaces
    assert any(m == "DELETE" and job_id in p for m, p in cluster.requests)
    assert not [n for n in cluster.list("namespaces") if job_id in n["metadata"]["name"]]


SLEEPER_CWL = """\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: k8s-sleeper
    inputs: []
    outputs: []
    steps:
      nap:
        run: "#nap"
        in: {}
        out: []
  - class: CommandLineTool
    id: nap
    requirements:
      DockerRequirement:
        dockerPull: eoepca/convert:latest
    baseCommand: [sleep, "300"]
    inputs: []
    outputs: []
"""


def test_dismiss_removes_the_jobs_namespace_emulated(
    calrissian_engine: Engine, cluster: EmulatedKubernetes
):
    api = calrissian_engine.api("k8s-dismisser")
    created = execute_async(api, deploy_cwl(api, SLEEPER_CWL), {})
    assert created.status_code == 201, created.text
    job_id = created.json()["jobID"]

    def tool_pod_running() -> bool:
        return any(
            job_id in p["metadata"]["namespace"]
            and "job-name" not in p["metadata"].get("labels", {})
            and p["status"].get("phase") == "Running"
            for p in cluster.list("pods")
        )

    assert cluster.wait_for(tool_pod_running, 180), (
        calrissian_engine.log_tail(),
        cluster.diagnostics(),
    )
    dismissed = requests.delete(created.headers["Location"], timeout=30)
    assert dismissed.status_code == 200, dismissed.text

    final = wait_for_status(created.headers["Location"], timeout=60)
    assert final["status"] == "dismissed"
    assert cluster.wait_for(
        lambda: not [n for n in cluster.list("namespaces") if job_id in n["metadata"]["name"]],
        60,
    ), cluster.diagnostics()
    assert not [p for p in cluster.list("pods") if job_id in p["metadata"]["namespace"]]
