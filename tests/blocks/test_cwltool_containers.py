"""The cwltool backend with containers: tools run in the session's real podman service.

The backend runs cwltool as a subprocess here (a stock worker's path), in docker mode
against podman's API (``DOCKER_HOST``); the fast worker's in-process path is covered by
``tests/api_gateway/test_containers.py``. Images are built locally; nothing is pulled.
"""

from __future__ import annotations

import json
import logging
import random
import struct
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from blocks.cwltool import CwltoolBackend
from infrastructure.containers.podman import PodmanService
from tests.conftest import FileServer, container_env, tiny_png
from tests.containers import geotiff, water_bodies_item
from tests.support import IMAGE_TOOL_CWL, LogLines, cwl_job, poll


def png_size(blob: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its IHDR chunk."""
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", blob[:8]
    return struct.unpack(">II", blob[16:24])


@pytest.fixture
def backend(tmp_path: Path, podman: PodmanService, monkeypatch: pytest.MonkeyPatch):
    for name, value in container_env(podman).items():
        monkeypatch.setenv(name, value)
    return CwltoolBackend(
        container_engine="docker",
        pull_images=False,
        network="host",
        cache_dir=tmp_path / "packages",
        kill_grace_s=2.0,
    )


@pytest.fixture
def records() -> logging.Logger:
    logger = logging.getLogger(f"test.containers.{random.randint(0, 10**9)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(LogLines())
    return logger


def _lines(logger: logging.Logger) -> list[str]:
    return logger.handlers[0].lines  # type: ignore[attr-defined]


def test_convert_url_resizes_the_png_in_its_image(
    app_packages: Path,
    backend: CwltoolBackend,
    records: logging.Logger,
    file_server: FileServer,
    tmp_path: Path,
):
    url = file_server.add("wide.png", tiny_png(40, 20))
    text = (app_packages / "convert-url-app.cwl").read_text()
    run = backend.submit(
        cwl_job(text, {"fn": "resize", "url": url, "size": "50%"}, tmp_path / "job", records)
    )
    outcome = run.wait_for_completion()
    assert outcome.success, (outcome.message, _lines(records)[-20:])
    folder = Path(unquote(urlparse(run.fetch_result()["converted_image"]["location"]).path))
    assert png_size((folder / "wide-resize.png").read_bytes()) == (20, 10)
    # ...with its STAC item and catalog, as the real eoepca/convert writes them.
    catalog = json.loads((folder / "catalog.json").read_text())
    assert [link["href"] for link in catalog["links"] if link["rel"] == "item"] == [
        "wide-resize.json"
    ]
    item = json.loads((folder / "wide-resize.json").read_text())
    assert item["type"] == "Feature"
    assert item["assets"]["output"]["href"] == "wide-resize.png"
    assert item["assets"]["output"]["type"] == "image/png"
    # cwltool ran the tool in the image (docker client, host network), not on the host.
    logged = "\n".join(_lines(records))
    assert "--net=host" in logged and "eoepca/convert:latest" in logged, logged[-3000:]


def test_a_container_that_exits_non_zero_fails_the_run(
    backend: CwltoolBackend, records: logging.Logger, tmp_path: Path
):
    text = IMAGE_TOOL_CWL.format(
        id="in-a-box", image="eoepca/convert:latest", script="echo disk full >&2; exit 7"
    )
    run = backend.submit(cwl_job(text, {}, tmp_path / "job", records))
    outcome = run.wait_for_completion()
    assert not outcome.success
    assert "disk full" in outcome.message, outcome.message


def test_an_absent_image_fails_fast_naming_it_and_nothing_is_pulled(
    backend: CwltoolBackend, records: logging.Logger, podman: PodmanService, tmp_path: Path
):
    image = f"example.invalid/nobody/absent-{random.randint(0, 10**6)}:1.0"
    run = backend.submit(
        cwl_job(
            IMAGE_TOOL_CWL.format(id="in-a-box", image=image, script="true"),
            {},
            tmp_path / "j",
            records,
        )
    )
    outcome = run.wait_for_completion()
    assert not outcome.success
    assert image in outcome.message, outcome.message
    assert not any(" pull" in line or "'pull'" in line for line in _lines(records))
    assert image not in podman.podman("images", "--format", "{{.Repository}}:{{.Tag}}")


def test_water_bodies_scatters_over_items_and_bands_in_stand_in_images(
    app_packages: Path,
    backend: CwltoolBackend,
    records: logging.Logger,
    file_server: FileServer,
    tmp_path: Path,
):
    folder = file_server.root / f"items-{random.randint(0, 10**9)}"
    base = f"{file_server.url}/{folder.name}"
    items = [water_bodies_item(folder, name, base) for name in ("item-a", "item-b")]
    text = (app_packages / "app-water-bodies-cloud-native.1.5.0.cwl").read_text()
    inputs = {"aoi": "10.001,45.971,10.039,45.999", "stac_items": items}
    run = backend.submit(cwl_job(text, inputs, tmp_path / "job", records))
    outcome = run.wait_for_completion()
    assert outcome.success, (outcome.message, _lines(records)[-30:])
    catalog = Path(unquote(urlparse(run.fetch_result()["stac_catalog"]["location"]).path))
    for name in ("item-a", "item-b"):
        mask = geotiff.read(catalog / name / "otsu.tif")
        assert mask.values == [1, 1, 1, 0] * 3, mask.values


def running_containers(podman: PodmanService, marker: str) -> list[str]:
    """Ids of the service's running containers whose command mentions ``marker``."""
    listing = podman.podman("ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}")
    return [line.split()[0] for line in listing.splitlines() if marker in line]


def test_cancel_removes_the_running_container(
    backend: CwltoolBackend, records: logging.Logger, podman: PodmanService, tmp_path: Path
):
    marker = f"{random.randint(100, 999)}.{random.randint(10**5, 10**6)}"
    text = IMAGE_TOOL_CWL.format(
        id="in-a-box", image="eoepca/convert:latest", script=f"sleep {marker}"
    )
    run = backend.submit(cwl_job(text, {}, tmp_path / "job", records))
    waiter = threading.Thread(target=run.wait_for_completion, daemon=True)
    waiter.start()
    poll(lambda: running_containers(podman, marker), timeout=60, what="the container running")
    run.cancel()
    poll(lambda: not running_containers(podman, marker), timeout=30, what="the container gone")
    waiter.join(timeout=15)
    assert not waiter.is_alive()
