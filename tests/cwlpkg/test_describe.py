"""OGC process descriptions and input schemas of CWL processes (``cwlpkg.describe``).

Descriptions are checked against the official OGC Part 1 1.0 ``process.yaml``
(``tests.ogc_schemas``).
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

import cwlpkg as cwl
from core.exceptions import InvalidPackage
from tests.cwlpkg.samples import ALL_TYPES
from tests.ogc_schemas import validate as validate_ogc

URI_OR_HREF = {
    "oneOf": [
        {"type": "string", "format": "uri"},
        {
            "type": "object",
            "required": ["href"],
            "properties": {
                "href": {"type": "string", "format": "uri"},
                "type": {"type": "string"},
            },
        },
    ]
}


# --- descriptions ---------------------------------------------------------------------


def test_describe_convert_url(convert_url: dict[str, Any]) -> None:
    description = cwl.describe(convert_url, "convert-url")

    assert description == {
        "id": "convert-url",
        "title": "convert url app",
        "description": "Convert URL",
        "version": "0.1.2",
        "keywords": [],
        "inputs": {
            "fn": {
                "title": "the operation to perform",
                "description": "the operation to perform",
                "schema": {"type": "string", "default": "resize"},
                "minOccurs": 0,
                "maxOccurs": 1,
            },
            "url": {
                "title": "the image to convert",
                "description": "the image to convert",
                "schema": {
                    "type": "string",
                    "default": "https://eoepca.org/media_portal/images/logo6_med.original.png",
                },
                "minOccurs": 0,
                "maxOccurs": 1,
            },
            "size": {
                "title": "the percentage for a resize operation",
                "description": "the percentage for a resize operation",
                "schema": {"type": "string", "default": "50%"},
                "minOccurs": 0,
                "maxOccurs": 1,
            },
        },
        "outputs": {
            "converted_image": {
                "title": "converted_image",
                "description": "",
                "schema": {"type": "string", "format": "uri"},
            }
        },
    }


def test_describe_water_bodies_arrays(water_bodies: dict[str, Any]) -> None:
    inputs = cwl.describe(water_bodies, "water_bodies")["inputs"]

    assert inputs["stac_items"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert (inputs["stac_items"]["minOccurs"], inputs["stac_items"]["maxOccurs"]) == (1, 1)
    assert inputs["bands"]["schema"]["default"] == ["green", "nir"]
    assert inputs["bands"]["minOccurs"] == 0
    assert inputs["aoi"]["minOccurs"] == 1


def test_describe_sub_workflow(water_bodies: dict[str, Any]) -> None:
    description = cwl.describe(water_bodies, "detect_water_body")

    validate_ogc(description, "process")
    assert description["inputs"]["bands"]["minOccurs"] == 1  # no default down there
    assert description["inputs"]["aoi"]["title"] == "aoi"  # no label: the id
    assert description["outputs"]["detected_water_body"]["schema"]["format"] == "uri"


def test_describe_maps_every_cwl_type() -> None:
    doc = cwl.parse_document(ALL_TYPES)
    cwl.validate_document(doc)
    description = cwl.describe(doc, "all-types")

    validate_ogc(description, "process")
    assert description["title"] == "All types"
    assert description["description"] == "first line\nsecond line"
    assert description["version"] == "2.0.0"
    assert description["keywords"] == ["water", "ndwi"]
    inputs = description["inputs"]
    schemas = {name: spec["schema"] for name, spec in inputs.items()}
    assert schemas == {
        "text": {"type": "string"},
        "count": {"type": "integer"},
        "big": {"type": "integer"},
        "ratio": {"type": "number"},
        "precise": {"type": "number"},
        "flag": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "color": {"type": "string", "enum": ["red", "green"]},
        "image": URI_OR_HREF,
        "folder": URI_OR_HREF,
        "images": {"type": "array", "items": URI_OR_HREF},
        "note": {"type": "string"},
        "level": {"type": "integer"},
        "anything": {},
        "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "box": {
            "type": "object",
            "properties": {
                "west": {"type": "number"},
                "east": {"type": "number"},
                "comment": {"type": "string"},
            },
            "required": ["west", "east"],
        },
        "threshold": {"type": "number", "default": 0.5},
        "reference": {**URI_OR_HREF, "default": "https://example.com/ref.tif"},
    }
    optional = {name for name, spec in inputs.items() if spec["minOccurs"] == 0}
    assert optional == {"note", "level", "threshold", "reference"}
    assert inputs["image"]["title"] == "Input image"
    assert {spec["maxOccurs"] for spec in inputs.values()} == {1}
    outputs = {name: spec["schema"] for name, spec in description["outputs"].items()}
    assert outputs == {
        "mask": {"type": "string", "format": "uri", "contentMediaType": "image/png"},
        "everything": {"type": "string", "format": "uri"},
        "tiles": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "log": {"type": "string", "format": "uri"},
    }


def test_describe_unknown_process(convert_url: dict[str, Any]) -> None:
    with pytest.raises(InvalidPackage, match="no process 'nope'"):
        cwl.describe(convert_url, "nope")


def test_input_schema_for_the_prefect_form(water_bodies: dict[str, Any]) -> None:
    schema = cwl.input_schema(cwl.describe(water_bodies, "water_bodies"))

    Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["aoi", "stac_items"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["epsg"] == {
        "type": "string",
        "default": "EPSG:4326",
        "title": "EPSG code",
        "description": "EPSG code",
    }


def test_input_schema_multiplicity() -> None:
    description = {
        "inputs": {
            "many": {"schema": {"type": "string"}, "minOccurs": 1, "maxOccurs": "unbounded"},
            "pair": {"schema": {"type": "integer"}, "minOccurs": 0, "maxOccurs": 2},
        }
    }
    properties = cwl.input_schema(description)["properties"]

    assert properties["many"]["items"] == {"type": "string"}
    assert properties["many"]["minItems"] == 1 and "maxItems" not in properties["many"]
    assert (properties["pair"]["type"], properties["pair"]["maxItems"]) == ("array", 2)
