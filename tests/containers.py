"""Session fixture: a real podman service with the tool images built locally.

Debian's podman runs as a docker-compatible API service on a unix socket in the
session's temporary folder (``infrastructure.containers``); every image the tests run
is built there from the host's Debian files, so nothing is pulled. Tests and engines
that use containers get the service's variables (``DOCKER_HOST`` and podman's own
configuration) through :meth:`PodmanService.environment`.

Also here: the water-bodies test data — a STAC item whose ``green`` and ``nir`` assets
are tiny GeoTIFFs written by the stand-in tools' own GeoTIFF module.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infrastructure.containers.images import TOOLS, build_images
from infrastructure.containers.podman import PodmanService

sys.path.insert(0, str(TOOLS / "common"))
import geotiff  # noqa: E402  (the stand-in tools' module, not a package of ours)

__all__ = ["geotiff", "podman", "water_bodies_item"]

# A 6x4 scene: water (green bright, nir dark) in the left half, land in the right half.
SCENE_ORIGIN = (10.0, 46.0)  # top-left corner: longitude, latitude, degrees
SCENE_PIXEL = (0.01, 0.01)  # degrees
SCENE_WIDTH, SCENE_HEIGHT = 6, 4


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    """A running podman service holding every image of ``infrastructure.containers``."""
    service = PodmanService(tmp_path_factory.mktemp("podman"))
    started = time.monotonic()
    service.start()
    service_s = time.monotonic() - started
    timings = build_images(service)
    print(
        f"\npodman service up in {service_s:.1f} s; images built in "
        f"{sum(timings.values()):.1f} s ({len(timings)} images)",
        file=sys.stderr,
    )
    try:
        yield service
    finally:
        service.stop()


def _band(water: float, land: float) -> geotiff.Raster:
    values = [
        (water if column < SCENE_WIDTH // 2 else land) + 0.01 * row
        for row in range(SCENE_HEIGHT)
        for column in range(SCENE_WIDTH)
    ]
    return geotiff.Raster(SCENE_WIDTH, SCENE_HEIGHT, values, SCENE_ORIGIN, SCENE_PIXEL)


def water_bodies_item(folder: Path, item_id: str, base_url: str) -> str:
    """Write a STAC item with tiny ``green``/``nir`` GeoTIFF assets into ``folder``.

    Returns the item's URL under ``base_url`` (``folder`` served there); asset hrefs
    are relative to the item, as in published catalogs.
    """
    folder.mkdir(parents=True, exist_ok=True)
    geotiff.write(folder / f"{item_id}-green.tif", _band(water=0.30, land=0.10))
    geotiff.write(folder / f"{item_id}-nir.tif", _band(water=0.05, land=0.40))
    west, north = SCENE_ORIGIN
    east = west + SCENE_WIDTH * SCENE_PIXEL[0]
    south = north - SCENE_HEIGHT * SCENE_PIXEL[1]
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        "bbox": [west, south, east, north],
        "properties": {"datetime": "2026-06-01T10:00:00Z"},
        "links": [],
        "assets": {
            band: {
                "href": f"./{item_id}-{band}.tif",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
            }
            for band in ("green", "nir")
        },
    }
    (folder / f"{item_id}.json").write_text(json.dumps(item))
    return f"{base_url}/{item_id}.json"
