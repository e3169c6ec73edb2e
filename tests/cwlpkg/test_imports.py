"""Remote schema imports written into a package (``cwlpkg.imports``).

The schemas here are written for these tests in the shape of eoap/schemas' ``ogc.yaml``
and ``string_format.yaml`` (types listed at the top level, referring to each other by
short name); ``tests/api_gateway/test_package_imports.py`` deploys eoap's own files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import cwlpkg as cwl
from core.exceptions import InvalidPackage
from cwlpkg.runner import run_cwl

BASE = "https://schemas.example.org/main"
GEO = f"{BASE}/geo.yaml"
TEXT = f"{BASE}/text.yaml"

# cwltool needs a type defined before a record field refers to it: the import comes first.
GEO_YAML = """\
- $import: text.yaml
- type: enum
  name: CRS
  symbols: [CRS84, CRS84h]
- type: record
  name: BBox
  fields:
  - {name: bbox, type: {type: array, items: double}}
  - {name: crs, type: CRS}
- type: record
  name: Place
  fields:
  - {name: box, type: BBox}
  - {name: name, type: "text.yaml#Label"}
"""
TEXT_YAML = """\
- type: record
  name: Label
  fields:
  - {name: value, type: string}
"""

PACKAGE = f"""\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: locate
    requirements:
      - class: SchemaDefRequirement
        types:
        - $import: {GEO}
    inputs:
      aoi: {{type: "{GEO}#BBox"}}
      where: {{type: "{GEO}#Place"}}
      label: {{type: "{TEXT}#Label"}}
    outputs:
      said: {{type: string, outputSource: say/said}}
    steps:
      say:
        run: "#say"
        in: {{aoi: aoi}}
        out: [said]
  - class: ExpressionTool
    id: say
    requirements:
      - class: InlineJavascriptRequirement
      - class: SchemaDefRequirement
        types:
        - $import: {GEO}
    inputs:
      aoi: {{type: "{GEO}#BBox"}}
    outputs:
      said: string
    expression: "$({{'said': inputs.aoi.crs + ' ' + inputs.aoi.bbox.join(',')}})"
"""


def documents() -> dict[str, Any]:
    return {GEO: cwl.parse_yaml(GEO_YAML), TEXT: cwl.parse_yaml(TEXT_YAML)}


def test_remote_imports_lists_each_url_once() -> None:
    doc = cwl.parse_document(PACKAGE)

    assert cwl.remote_imports(doc) == [GEO]
    # An imported document's relative imports resolve against its own URL.
    assert cwl.remote_imports(documents()[GEO], GEO) == [TEXT]
    assert cwl.remote_imports({"types": [{"$import": "local.yaml"}]}) == []


def test_inlined_package_validates_describes_and_runs_without_network(tmp_path: Path) -> None:
    doc = cwl.inline_imports(cwl.parse_document(PACKAGE), documents())

    assert "$import" not in json.dumps(doc)
    types = doc["$graph"][0]["requirements"][0]["types"]
    assert [t["name"] for t in types] == [
        f"{TEXT}#Label",
        f"{GEO}#CRS",
        f"{GEO}#BBox",
        f"{GEO}#Place",
    ]
    assert types[2]["fields"][1] == {"name": "crs", "type": f"{GEO}#CRS"}
    assert types[3]["fields"] == [
        {"name": "box", "type": f"{GEO}#BBox"},
        {"name": "name", "type": f"{TEXT}#Label"},
    ]
    cwl.validate_document(doc)  # the package's own references resolve to the inlined types
    description = cwl.describe(doc, "locate")
    assert description["inputs"]["aoi"]["schema"]["properties"]["crs"] == {
        "type": "string",
        "enum": ["CRS84", "CRS84h"],
    }
    assert description["inputs"]["label"]["schema"]["required"] == ["value"]
    packed = cwl.pack(doc, "locate")
    cwl.validate_document(packed)  # what runners get (cwltool's pack refers within it)
    inputs = cwl.validate_inputs(
        description,
        {
            "aoi": {"class": f"{GEO}#BBox", "bbox": [1, 2, 3, 4], "crs": "CRS84"},
            "where": {"box": {"bbox": [0, 0, 1, 1], "crs": "CRS84h"}, "name": {"value": "x"}},
            "label": {"class": f"{TEXT}#Label", "value": "here"},
        },
    )
    assert inputs["aoi"] == {"bbox": [1, 2, 3, 4], "crs": "CRS84"}
    assert inputs["label"] == {"value": "here"}
    order = cwl.job_order(packed, cwl.entrypoint(packed), inputs)
    outcome = run_cwl(packed, cwl.entrypoint(packed), order, tmp_path)
    assert outcome.success, outcome.message
    assert outcome.outputs == {"said": "CRS84 1,2,3,4"}


def test_type_references_keep_their_suffixes() -> None:
    doc = {"$import": GEO}
    imported = [{"type": "record", "name": "Pair", "fields": [{"name": "a", "type": "#CRS[]?"}]}]

    inlined = cwl.inline_imports(doc, {GEO: imported})

    assert inlined == [
        {
            "type": "record",
            "name": f"{GEO}#Pair",
            "fields": [{"name": "a", "type": f"{GEO}#CRS[]?"}],
        }
    ]


def test_without_the_imported_document_the_package_is_still_refused() -> None:
    doc = cwl.inline_imports(cwl.parse_document(PACKAGE), {})

    with pytest.raises(InvalidPackage, match="outside the package"):
        cwl.validate_document(doc)
