"""Stand-in normalized difference: python -m app GREEN.tif NIR.tif writes ``norm_diff.tif``."""

import sys

import geotiff


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python -m app GREEN.tif NIR.tif", file=sys.stderr)
        return 2
    green, nir = (geotiff.read(path) for path in sys.argv[1:])
    if (green.width, green.height) != (nir.width, nir.height):
        print("the two rasters differ in size", file=sys.stderr)
        return 1
    values = [
        (g - n) / (g + n) if g + n else 0.0 for g, n in zip(green.values, nir.values, strict=True)
    ]
    geotiff.write(
        "norm_diff.tif",
        geotiff.Raster(green.width, green.height, values, green.origin, green.pixel_size),
    )
    print(f"NDWI of {green.width}x{green.height} pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
