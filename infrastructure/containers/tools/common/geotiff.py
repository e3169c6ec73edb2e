"""A tiny GeoTIFF reader and writer (stdlib only) for the stand-in water-bodies tools.

Single-band rasters, one uncompressed strip, little-endian, ``uint8`` or ``float32``
samples, with the georeferencing of a north-up grid in EPSG:4326: ModelPixelScale,
ModelTiepoint and a GeoKeyDirectory. Enough for tools that crop, compute and threshold
tiny test rasters; not a general TIFF library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Raster", "read", "write"]

_SAMPLE = {"uint8": (8, 1, "B"), "float32": (32, 3, "f")}  # bits, SampleFormat, struct code
# GeoKeyDirectory: version 1.1.0, 3 keys: raster is-area, geographic model, EPSG:4326.
_GEOKEYS = (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326)


@dataclass
class Raster:
    """A single-band grid: ``values`` row by row; ``origin`` is the top-left corner.

    Attributes:
        width, height: size in pixels.
        values: ``width * height`` samples, row-major from the top-left.
        origin: (longitude, latitude) of the top-left corner, degrees.
        pixel_size: (x, y) size of one pixel, degrees (both positive).
        dtype: ``"uint8"`` or ``"float32"``.
    """

    width: int
    height: int
    values: list[float]
    origin: tuple[float, float] = (0.0, 0.0)
    pixel_size: tuple[float, float] = (1.0, 1.0)
    dtype: str = "float32"

    def at(self, column: int, row: int) -> float:
        return self.values[row * self.width + column]


def write(path: Path | str, raster: Raster) -> None:
    """Write ``raster`` as a GeoTIFF at ``path``."""
    bits, sample_format, code = _SAMPLE[raster.dtype]
    data = struct.pack(f"<{len(raster.values)}{code}", *raster.values)
    doubles = struct.pack(
        "<9d",
        raster.pixel_size[0],
        raster.pixel_size[1],
        0.0,
        0.0,
        0.0,
        0.0,
        raster.origin[0],
        raster.origin[1],
        0.0,
    )
    geokeys = struct.pack(f"<{len(_GEOKEYS)}H", *_GEOKEYS)
    # Layout: header, pixel data, the two arrays the directory points at, the directory.
    data_at = 8
    doubles_at = data_at + len(data) + (len(data) % 2)
    geokeys_at = doubles_at + len(doubles)
    ifd_at = geokeys_at + len(geokeys)
    entries = [
        (256, 4, 1, raster.width),  # ImageWidth (LONG)
        (257, 4, 1, raster.height),  # ImageLength
        (258, 3, 1, bits),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, data_at),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, raster.height),  # RowsPerStrip
        (279, 4, 1, len(data)),  # StripByteCounts
        (339, 3, 1, sample_format),  # SampleFormat
        (33550, 12, 3, doubles_at),  # ModelPixelScale (DOUBLE x3)
        (33922, 12, 6, doubles_at + 24),  # ModelTiepoint (DOUBLE x6)
        (34735, 3, len(_GEOKEYS), geokeys_at),  # GeoKeyDirectory (SHORT)
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 and count == 1 else None
        ifd += struct.pack("<HHI", tag, kind, count) + (packed or struct.pack("<I", value))
    ifd += struct.pack("<I", 0)
    padding = b"\0" * (doubles_at - data_at - len(data))
    Path(path).write_bytes(
        b"II*\0" + struct.pack("<I", ifd_at) + data + padding + doubles + geokeys + ifd
    )


def read(path: Path | str) -> Raster:
    """Read a GeoTIFF written by :func:`write` (or any like it: one strip, no compression)."""
    blob = Path(path).read_bytes()
    if blob[:4] != b"II*\0":
        raise ValueError(f"{path}: not a little-endian TIFF")
    (ifd_at,) = struct.unpack_from("<I", blob, 4)
    (count,) = struct.unpack_from("<H", blob, ifd_at)
    tags: dict[int, tuple[int, int, int]] = {}
    for index in range(count):
        tag, kind, number, value = struct.unpack_from("<HHII", blob, ifd_at + 2 + 12 * index)
        if kind == 3 and number == 1:
            value &= 0xFFFF
        tags[tag] = (kind, number, value)
    width, height = tags[256][2], tags[257][2]
    if tags.get(259, (0, 0, 1))[2] != 1:
        raise ValueError(f"{path}: compressed TIFFs are not supported by this stand-in")
    dtype = "float32" if tags.get(339, (0, 0, 1))[2] == 3 else "uint8"
    code = _SAMPLE[dtype][2]
    values = list(struct.unpack_from(f"<{width * height}{code}", blob, tags[273][2]))
    scale = struct.unpack_from("<3d", blob, tags[33550][2]) if 33550 in tags else (1.0, 1.0, 0)
    tie = struct.unpack_from("<6d", blob, tags[33922][2]) if 33922 in tags else (0,) * 6
    return Raster(width, height, values, (tie[3], tie[4]), (scale[0], scale[1]), dtype)
