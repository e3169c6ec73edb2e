"""convert.sh FN --url URL SIZE: what the eoepca/convert image writes, with Pillow.

The real tool (ImageMagick behind a shell script) resizes the image at URL and writes,
into the working directory (the step's output directory):

* ``<stem>-resize.<ext>``: the resized image (``logo.png`` -> ``logo-resize.png``);
* ``<stem>-resize.json``: a STAC item whose ``output`` asset is that image;
* ``catalog.json``: a STAC catalog linking the item.
"""

import argparse
import datetime
import io
import json
import sys
import urllib.parse
import urllib.request
from pathlib import PurePosixPath

from PIL import Image

# The footprint the real tool gives every item (it knows no geometry of a plain image).
FOOTPRINT = [[30.156, 28.809], [30.407, 29.805], [31.032, 29.816], [31.050, 28.825]]


def resized(image: Image.Image, size: str) -> Image.Image:
    """``size`` as ImageMagick's -resize reads it: ``50%`` or ``WIDTHxHEIGHT``."""
    if size.endswith("%"):
        factor = float(size[:-1]) / 100.0
        box = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    else:
        width, _, height = size.partition("x")
        box = (int(width), int(height or width))
    return image.resize(box, Image.LANCZOS)


def write_stac(name: str, media_type: str, size_bytes: int) -> None:
    stem = PurePosixPath(name).stem
    now = datetime.datetime.now(datetime.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    lons = [lon for lon, _ in FOOTPRINT]
    lats = [lat for _, lat in FOOTPRINT]
    item = {
        "stac_version": "1.0.0",
        "id": f"{stem}-{now.timestamp():.6f}",
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[*FOOTPRINT, FOOTPRINT[0]]]},
        "properties": {"created": stamp, "datetime": stamp, "updated": stamp},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "assets": {
            "output": {
                "type": media_type,
                "roles": ["data"],
                "href": name,
                "file:size": size_bytes,
            }
        },
        "links": [
            {"type": "application/json", "rel": "parent", "href": "catalog.json"},
            {"type": "application/geo+json", "rel": "self", "href": f"{stem}.json"},
            {"type": "application/json", "rel": "root", "href": "catalog.json"},
        ],
    }
    catalog = {
        "stac_version": "1.0.0",
        "id": "catalog",
        "type": "Catalog",
        "description": "Root catalog",
        "links": [
            {"type": "application/geo+json", "rel": "item", "href": f"{stem}.json"},
            {"type": "application/json", "rel": "self", "href": "catalog.json"},
        ],
    }
    with open(f"{stem}.json", "w") as handle:
        json.dump(item, handle, indent=2)
    with open("catalog.json", "w") as handle:
        json.dump(catalog, handle, indent=2)


def main() -> int:
    parser = argparse.ArgumentParser(prog="convert.sh")
    parser.add_argument("fn", choices=["resize"])
    parser.add_argument("--url", required=True)
    parser.add_argument("size", help="a percentage (50%%) or WIDTHxHEIGHT")
    args = parser.parse_args()
    with urllib.request.urlopen(args.url, timeout=60) as response:
        image = Image.open(io.BytesIO(response.read()))
        image.load()
    source = PurePosixPath(urllib.parse.urlsplit(args.url).path).name or "image.png"
    stem, dot, ext = source.rpartition(".")
    name = f"{stem}-resize.{ext}" if dot else f"{source}-resize"
    output = resized(image, args.size)
    output.save(name, format=image.format or "PNG")
    media_type = Image.MIME.get(image.format or "PNG", "application/octet-stream")
    with open(name, "rb") as handle:
        write_stac(name, media_type, len(handle.read()))
    print(f"{args.url}: {image.width}x{image.height} -> {name}: {output.width}x{output.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
