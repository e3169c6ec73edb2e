"""What the tests of ``cwlpkg`` share: a CWL tool using every kind of type, and the names of
the real application packages they read (``tests.reference``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cwlpkg as cwl

__all__ = ["ALL_TYPES", "CONVERT_URL", "WATER_BODIES", "load"]

CONVERT_URL = "convert-url-app.cwl"
WATER_BODIES = "app-water-bodies-cloud-native.1.5.0.cwl"

# A single CommandLineTool (deployable on its own) using every kind of CWL type.
ALL_TYPES = """\
cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  iana: https://www.iana.org/assignments/media-types/
schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf
s:softwareVersion: 2.0.0
s:keywords: "water, ndwi"
class: CommandLineTool
id: all-types
label: All types
doc: [first line, second line]
requirements:
  SchemaDefRequirement:
    types:
      - name: Mode
        type: enum
        symbols: [fast, slow]
baseCommand: "true"
inputs:
  - {id: text, type: string}
  - {id: "#all-types/count", type: int}
  - {id: big, type: long}
  - {id: ratio, type: float}
  - {id: precise, type: double}
  - {id: flag, type: boolean}
  - {id: mode, type: "#all-types/Mode"}
  - {id: color, type: {type: enum, symbols: [red, green]}}
  - {id: image, type: File, label: Input image}
  - {id: folder, type: Directory}
  - {id: images, type: "File[]"}
  - {id: note, type: string?}
  - {id: level, type: ["null", int]}
  - {id: anything, type: Any}
  - {id: either, type: [string, int]}
  - id: box
    type:
      type: record
      fields:
        west: float
        east: float
        comment: string?
  - {id: threshold, type: float, default: 0.5}
  - {id: reference, type: File, default: {class: File, location: "https://example.com/ref.tif"}}
outputs:
  - {id: mask, type: File, format: "iana:image/png", outputBinding: {glob: mask.png}}
  - {id: everything, type: Directory, outputBinding: {glob: .}}
  - {id: tiles, type: "File[]", outputBinding: {glob: "*.tif"}}
  - {id: log, type: stdout}
"""


def load(path: Path) -> dict[str, Any]:
    return cwl.parse_document(path.read_bytes(), base_uri=path.as_uri())
