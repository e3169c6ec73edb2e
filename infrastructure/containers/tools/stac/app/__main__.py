"""Stand-in STAC tool: a self-contained catalog of one item per water-body mask.

python -m app --input-item URL ... --water-body MASK.tif ... writes ``catalog.json`` and
``<item id>/<item id>.json`` with the mask beside it (asset ``data``), into the working
directory, with relative links as a self-contained catalog has.
"""

import argparse
import json
import shutil
import sys
import urllib.request
from pathlib import Path

STAC_VERSION = "1.0.0"


def main() -> int:
    parser = argparse.ArgumentParser(prog="stac")
    parser.add_argument("--input-item", action="append", required=True)
    parser.add_argument("--water-body", action="append", required=True)
    args = parser.parse_args()
    if len(args.input_item) != len(args.water_body):
        parser.error("one --water-body per --input-item")
    catalog = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "water-bodies",
        "description": "Water bodies detected with NDWI and Otsu's threshold",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}],
    }
    for url, mask in zip(args.input_item, args.water_body, strict=True):
        with urllib.request.urlopen(url, timeout=60) as response:
            source = json.load(response)
        item_id = source["id"]
        folder = Path(item_id)
        folder.mkdir(exist_ok=True)
        shutil.copy(mask, folder / "otsu.tif")
        item = {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "id": item_id,
            "geometry": source.get("geometry"),
            "bbox": source.get("bbox"),
            "properties": {"datetime": source["properties"].get("datetime")},
            "links": [
                {"rel": "root", "href": "../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            ],
            "assets": {
                "data": {
                    "href": "./otsu.tif",
                    "type": "image/tiff; application=geotiff",
                    "title": "Water bodies",
                    "roles": ["data"],
                }
            },
        }
        (folder / f"{item_id}.json").write_text(json.dumps(item, indent=2))
        catalog["links"].append(
            {"rel": "item", "href": f"./{item_id}/{item_id}.json", "type": "application/json"}
        )
    Path("catalog.json").write_text(json.dumps(catalog, indent=2))
    print(f"catalog of {len(args.input_item)} item(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
