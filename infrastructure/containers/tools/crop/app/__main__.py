"""Stand-in crop tool: the band asset of a STAC item, cut to the area of interest.

python -m app --input-item URL --aoi MINX,MINY,MAXX,MAXY --epsg EPSG:4326 --band NAME
writes ``crop_<band>.tif`` (the raster must be in the AOI's EPSG:4326).
"""

import argparse
import json
import sys
import tempfile
import urllib.parse
import urllib.request

import geotiff


def main() -> int:
    parser = argparse.ArgumentParser(prog="crop")
    parser.add_argument("--input-item", required=True)
    parser.add_argument("--aoi", required=True)
    parser.add_argument("--epsg", default="EPSG:4326")
    parser.add_argument("--band", required=True)
    args = parser.parse_args()
    if args.epsg != "EPSG:4326":
        parser.error(f"only EPSG:4326 is supported by this stand-in, not {args.epsg}")
    with urllib.request.urlopen(args.input_item, timeout=60) as response:
        item = json.load(response)
    asset = item["assets"][args.band]
    href = urllib.parse.urljoin(args.input_item, asset["href"])
    # Not in the working directory: the step's output is every *.tif there.
    with tempfile.TemporaryDirectory() as scratch:
        source = f"{scratch}/{args.band}.tif"
        urllib.request.urlretrieve(href, source)
        raster = geotiff.read(source)
    minx, miny, maxx, maxy = (float(v) for v in args.aoi.split(","))
    (x0, y0), (dx, dy) = raster.origin, raster.pixel_size
    first_col = max(0, int((minx - x0) // dx))
    last_col = min(raster.width, int(-(-(maxx - x0) // dx)))
    first_row = max(0, int((y0 - maxy) // dy))
    last_row = min(raster.height, int(-(-(y0 - miny) // dy)))
    if first_col >= last_col or first_row >= last_row:
        print(f"the AOI {args.aoi} does not overlap {href}", file=sys.stderr)
        return 1
    values = [
        raster.at(col, row)
        for row in range(first_row, last_row)
        for col in range(first_col, last_col)
    ]
    cropped = geotiff.Raster(
        last_col - first_col,
        last_row - first_row,
        values,
        (x0 + first_col * dx, y0 - first_row * dy),
        (dx, dy),
        raster.dtype,
    )
    geotiff.write(f"crop_{args.band}.tif", cropped)
    print(f"{args.band}: {raster.width}x{raster.height} -> {cropped.width}x{cropped.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
