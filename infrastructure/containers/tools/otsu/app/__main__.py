"""Stand-in Otsu threshold: python -m app NDWI.tif writes the water mask ``otsu.tif``."""

import sys

import geotiff

BINS = 64


def otsu_threshold(values: list[float]) -> float:
    """The threshold that maximises the between-class variance of ``values``."""
    low, high = min(values), max(values)
    if high == low:
        return high
    width = (high - low) / BINS
    counts = [0] * BINS
    for value in values:
        counts[min(BINS - 1, int((value - low) / width))] += 1
    total, total_sum = len(values), sum(i * c for i, c in enumerate(counts))
    best, best_bin, below, below_sum = -1.0, 0, 0, 0
    for index, count in enumerate(counts):
        below += count
        below_sum += index * count
        above = total - below
        if below == 0 or above == 0:
            continue
        mean_below, mean_above = below_sum / below, (total_sum - below_sum) / above
        variance = below * above * (mean_below - mean_above) ** 2
        if variance > best:
            best, best_bin = variance, index
    return low + (best_bin + 1) * width


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m app NDWI.tif", file=sys.stderr)
        return 2
    ndwi = geotiff.read(sys.argv[1])
    threshold = otsu_threshold(ndwi.values)
    mask = [1 if value > threshold else 0 for value in ndwi.values]
    geotiff.write(
        "otsu.tif",
        geotiff.Raster(ndwi.width, ndwi.height, mask, ndwi.origin, ndwi.pixel_size, "uint8"),
    )
    print(f"threshold {threshold:.3f}: {sum(mask)} of {len(mask)} pixels are water")
    return 0


if __name__ == "__main__":
    sys.exit(main())
