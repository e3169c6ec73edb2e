"""Every eoap application-package pattern (1-12) is a process, and takes the inputs its
parameter file gives (``tests/api_gateway/test_eoap_patterns.py`` deploys them)."""

from __future__ import annotations

import json

import pytest

import cwlpkg as cwl
from tests import eoap_patterns, reference


@pytest.mark.parametrize("number", eoap_patterns.NUMBERS)
def test_pattern_is_a_process_that_takes_its_parameters(number: int) -> None:
    folder = reference.eoap_patterns()
    doc = cwl.parse_document(eoap_patterns.package_text(folder, number))
    doc = cwl.inline_imports(doc, eoap_patterns.schema_documents(folder))
    assert "$import" not in json.dumps(doc)

    cwl.validate_document(doc)
    process_id = cwl.select_workflow(doc, None)
    assert process_id == f"pattern-{number}"
    description = cwl.describe(doc, process_id)
    inputs = cwl.validate_inputs(description, eoap_patterns.params(folder, number))
    packed = cwl.pack(doc, process_id)
    cwl.check_package_files(packed, cwl.entrypoint(packed))
    order = cwl.job_order(packed, cwl.entrypoint(packed), inputs)

    # Typed URLs became the Directory/File references the workflow reads.
    for name in ("item", "item_1", "item_2", "dem"):
        if name in order:
            assert order[name]["class"] in ("Directory", "File"), order[name]
            assert order[name]["location"].startswith("https://"), order[name]
    for item in order.get("items", []):
        assert item["class"] == "Directory" and item["location"].startswith("https://")


def test_pattern_12_types_come_from_the_imported_schemas() -> None:
    folder = reference.eoap_patterns()
    doc = cwl.parse_document(eoap_patterns.package_text(folder, 12))
    doc = cwl.inline_imports(doc, eoap_patterns.schema_documents(folder))
    description = cwl.describe(doc, "pattern-12")

    aoi = description["inputs"]["aoi"]["schema"]
    assert aoi["required"] == ["bbox", "crs"]
    assert aoi["properties"]["crs"] == {"type": "string", "enum": ["CRS84", "CRS84h"]}
    collection = description["inputs"]["cropped-collection"]["schema"]
    assert collection["properties"] == {"value": {"type": "string"}}
    inputs = cwl.validate_inputs(description, eoap_patterns.params(folder, 12))
    assert inputs["aoi"] == {"bbox": [-118.985, 38.432, -118.183, 38.938], "crs": "CRS84"}
    assert inputs["cropped-collection"]["value"].endswith("/cropped_collection.json")
