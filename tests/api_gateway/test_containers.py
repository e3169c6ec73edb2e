"""Application packages whose tools run in containers, through the OGC API.

The ``container_engine`` stack runs jobs in the fast worker's job processes (cwltool
in-process), in docker mode against the session's podman service; images are built
locally (``tests.containers``) and never pulled. The convert-url package runs with its
real ``DockerRequirement``; the water-bodies package (scatter, sub-workflow, four tools)
runs its stand-in images on tiny STAC items served from loopback. Results are staged out
to the stage-out S3 server (moto) and read back from there.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import requests

from infrastructure.containers.podman import PodmanService
from tests.blocks.test_cwltool_containers import png_size, running_containers
from tests.conftest import Engine, FileServer, tiny_png
from tests.containers import geotiff, water_bodies_item
from tests.ogc_schemas import validate
from tests.s3_server import S3Server
from tests.support import (
    IMAGE_TOOL_CWL,
    converted_item,
    deploy_cwl,
    execute_async,
    poll,
    wait_for_status,
)

WATER_BODIES = "app-water-bodies-cloud-native.1.5.0.cwl"


def _run(api: str, process_id: str, inputs: dict, timeout: float = 120) -> dict:
    created = execute_async(api, process_id, inputs)
    assert created.status_code == 201, created.text
    return wait_for_status(created.headers["Location"], timeout=timeout)


def test_convert_url_resizes_the_png_in_its_container(
    app_packages: Path,
    container_engine: Engine,
    user: str,
    file_server: FileServer,
    stageout_s3: S3Server,
):
    api = container_engine.api(user)
    deploy_body = json.loads((app_packages / "convert-url-deploy-request.json").read_text())
    deploy_body["executionUnit"]["href"] = f"{file_server.url}/convert-url-app.cwl"
    deployed = requests.post(
        f"{api}/processes",
        data=json.dumps(deploy_body),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=60,
    )
    assert deployed.status_code == 201, deployed.text
    url = file_server.add("banner.png", tiny_png(64, 30))

    final = _run(api, "convert-url", {"fn": "resize", "url": url, "size": "50%"})
    assert final["status"] == "successful", (final, container_engine.log_tail())

    results = requests.get(f"{api}/jobs/{final['jobID']}/results", timeout=30).json()
    validate(results, "results")
    prefix = f"processing-results/{final['jobID']}/converted_image"
    # What the real eoepca/convert writes: the image, its STAC item and the catalog,
    # published on S3.
    catalog = results["converted_image"]
    assert catalog["href"] == f"s3://eoepca/{prefix}/catalog.json"
    _, stored = converted_item(catalog, stageout_s3.get)
    assert stored["href"] == f"s3://eoepca/{prefix}/banner-resize.png"
    assert stored["type"] == "image/png"
    assert png_size(stageout_s3.get(stored["href"])) == (32, 15)


def test_a_failing_container_fails_the_job_with_its_message(container_engine: Engine, user: str):
    api = container_engine.api(user)
    text = IMAGE_TOOL_CWL.format(
        id="in-a-box", image="eoepca/convert:latest", script="echo no space left >&2; exit 4"
    )
    process_id = deploy_cwl(api, text)
    final = _run(api, process_id, {})
    assert final["status"] == "failed", final
    assert "no space left" in final["message"], final


def test_an_absent_image_fails_the_job_naming_the_image(container_engine: Engine, user: str):
    api = container_engine.api(user)
    image = "registry.example.invalid/absent/tool:9.9"
    process_id = deploy_cwl(api, IMAGE_TOOL_CWL.format(id="in-a-box", image=image, script="true"))
    final = _run(api, process_id, {})
    assert final["status"] == "failed", final
    assert image in final["message"], final


def test_water_bodies_is_described_from_its_package(
    app_packages: Path, container_engine: Engine, user: str, file_server: FileServer
):
    api = container_engine.api(user)
    process_id = deploy_cwl(api, (app_packages / WATER_BODIES).read_text())
    assert process_id == "water_bodies"
    process = requests.get(f"{api}/processes/water_bodies", timeout=30).json()
    validate(process, "process")
    inputs = process["inputs"]
    assert set(inputs) == {"aoi", "epsg", "stac_items", "bands"}
    assert inputs["aoi"]["schema"] == {"type": "string"}
    assert inputs["aoi"]["minOccurs"] == 1
    assert inputs["epsg"]["schema"] == {"type": "string", "default": "EPSG:4326"}
    assert inputs["epsg"]["minOccurs"] == 0
    assert inputs["stac_items"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert inputs["stac_items"]["minOccurs"] == 1
    assert inputs["bands"]["schema"]["type"] == "array"
    assert inputs["bands"]["schema"]["items"] == {"type": "string"}
    assert inputs["bands"]["schema"]["default"] == ["green", "nir"]
    assert set(process["outputs"]) == {"stac_catalog"}


def test_water_bodies_runs_end_to_end_in_its_stand_in_images(
    app_packages: Path,
    container_engine: Engine,
    user: str,
    file_server: FileServer,
    stageout_s3: S3Server,
):
    api = container_engine.api(user)
    deploy_cwl(api, (app_packages / WATER_BODIES).read_text())
    folder = file_server.root / f"stac-{user}"
    base = f"{file_server.url}/{folder.name}"
    items = [water_bodies_item(folder, name, base) for name in ("S2A_T32TMS_1", "S2B_T32TMS_2")]
    # The AOI covers the scene's top-left 4x3 pixels: water and land both.
    inputs = {"aoi": "10.001,45.971,10.039,45.999", "epsg": "EPSG:4326", "stac_items": items}

    final = _run(api, "water_bodies", inputs, timeout=240)
    assert final["status"] == "successful", (final, container_engine.log_tail(lines=80))

    results = requests.get(f"{api}/jobs/{final['jobID']}/results", timeout=30).json()
    validate(results, "results")
    published = results["stac_catalog"]
    prefix = f"processing-results/{final['jobID']}/stac_catalog"
    assert published["type"] == "Catalog"
    assert published["href"] == f"s3://eoepca/{prefix}/catalog.json"
    assert sorted(stageout_s3.keys("eoepca", f"{prefix}/")) == [
        f"{prefix}/S2A_T32TMS_1/S2A_T32TMS_1.json",
        f"{prefix}/S2A_T32TMS_1/otsu.tif",
        f"{prefix}/S2B_T32TMS_2/S2B_T32TMS_2.json",
        f"{prefix}/S2B_T32TMS_2/otsu.tif",
        f"{prefix}/catalog.json",
    ]
    catalog = stageout_s3.read_catalog(published["href"])
    catalog.validate_all()
    stac_items = list(catalog.get_items(recursive=True))
    assert sorted(item.id for item in stac_items) == ["S2A_T32TMS_1", "S2B_T32TMS_2"]
    for item in stac_items:
        # Every asset href resolves in the bucket.
        href = item.assets["data"].get_absolute_href()
        assert href.startswith(f"s3://eoepca/{prefix}/"), href
        with tempfile.NamedTemporaryFile(suffix=".tif") as copy:
            copy.write(stageout_s3.get(href))
            copy.flush()
            mask = geotiff.read(copy.name)
        assert (mask.width, mask.height) == (4, 3)
        # Water (left half of the scene) is 1, land 0, row after row.
        assert mask.values == [1, 1, 1, 0] * 3, mask.values
        assert mask.origin == (10.0, 46.0)


def test_dismissing_a_job_removes_its_running_container(
    container_engine: Engine, user: str, podman: PodmanService
):
    api = container_engine.api(user)
    marker = f"{random.randint(100, 999)}.{random.randint(10**5, 10**6)}"
    text = IMAGE_TOOL_CWL.format(
        id="in-a-box", image="eoepca/convert:latest", script=f"sleep {marker}"
    )
    process_id = deploy_cwl(api, text)
    job_url = execute_async(api, process_id, {}).headers["Location"]
    poll(lambda: running_containers(podman, marker), timeout=120, what="the container running")
    response = requests.delete(job_url, timeout=30)
    assert response.status_code == 200, response.text
    wait_for_status(job_url, ["dismissed"], timeout=60)
    # The fast worker SIGKILLs the job's process group: the docker client dies, and the
    # container, which runs in podman's service, is removed by its cidfile.
    poll(lambda: not running_containers(podman, marker), timeout=30, what="the container gone")
