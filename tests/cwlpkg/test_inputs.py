"""Execute inputs checked against a process, and cwltool job orders (``cwlpkg.inputs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import cwlpkg as cwl
from core.exceptions import InvalidInput
from tests.cwlpkg.samples import ALL_TYPES


def all_types_description() -> dict[str, Any]:
    return cwl.describe(cwl.parse_document(ALL_TYPES), "all-types")


def test_validate_inputs_normalizes_qualified_values() -> None:
    inputs = {
        "text": {"value": "hello", "mediaType": "text/plain"},
        "count": 3,
        "big": 2**40,
        "ratio": 1,
        "precise": 0.25,
        "flag": False,
        "mode": "fast",
        "color": "red",
        "image": {"href": "s3://bucket/image.tif", "type": "image/tiff"},
        "folder": "https://example.com/catalog.json",
        "images": [{"value": "https://example.com/a.tif"}, {"href": "https://example.com/b.tif"}],
        "anything": {"x": [1]},
        "either": 7,
        "box": {"west": 1.5, "east": 2},
    }

    normalized = cwl.validate_inputs(all_types_description(), inputs)

    assert normalized == {
        **inputs,
        "text": "hello",
        "images": ["https://example.com/a.tif", {"href": "https://example.com/b.tif"}],
    }
    assert "threshold" not in normalized  # defaults are not filled in


def test_validate_inputs_names_every_bad_input() -> None:
    inputs = {
        "text": 3,
        "count": "three",
        "mode": "medium",
        "image": "not a url",
        "images": ["https://example.com/a.tif", 5],
        "box": {"west": 1},
        "colour": "red",
    }

    with pytest.raises(InvalidInput) as info:
        cwl.validate_inputs(all_types_description(), inputs)
    errors = info.value.errors
    assert set(errors) == {
        "text",
        "count",
        "mode",
        "image",
        "images",
        "box",
        "colour",
        "big",
        "ratio",
        "precise",
        "flag",
        "color",
        "folder",
        "anything",
        "either",
    }
    assert errors["text"] == "3 is not of type 'string'"
    assert "'medium' is not one of ['fast', 'slow']" in errors["mode"]
    assert "'not a url' is not an http(s):// or s3:// URL" in errors["image"]
    assert errors["images"].startswith("at $[1]: 5 is not valid: expected object or string")
    assert "'east' is a required property" in errors["box"]
    assert errors["colour"].startswith("unknown input (this process takes: text, count")
    assert errors["flag"] == "required input is missing"
    assert info.value.detail.startswith("Invalid inputs: text: 3 is not of type 'string'; ")


def test_validate_inputs_convert_url_request(
    convert_url: dict[str, Any], app_packages: Path
) -> None:
    description = cwl.describe(convert_url, "convert-url")
    request = json.loads((app_packages / "convert-url-execute-request.json").read_text())

    assert cwl.validate_inputs(description, request["inputs"]) == request["inputs"]
    assert cwl.validate_inputs(description, {}) == {}
    with pytest.raises(InvalidInput, match="unknown input") as info:
        cwl.validate_inputs(description, {"fn": {"value": "resize"}, "scale": "2"})
    assert list(info.value.errors) == ["scale"]
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        cwl.validate_inputs(description, ["fn"])  # type: ignore[arg-type]


def test_job_order_turns_references_into_cwl_files() -> None:
    doc = cwl.parse_document(ALL_TYPES)
    inputs = {
        "text": "hello",
        "image": "s3://bucket/image.tif",
        "folder": {"href": "https://example.com/catalog.json", "type": "application/json"},
        "images": ["https://example.com/a.tif", {"href": "https://example.com/b.tif"}],
        "reference": {"class": "File", "location": "https://example.com/c.tif"},
        "box": {"west": 1.0, "east": 2.0},
        "either": "s3://not/a/file",
    }

    expected = {
        "text": "hello",
        "image": {"class": "File", "location": "s3://bucket/image.tif"},
        "folder": {"class": "Directory", "location": "https://example.com/catalog.json"},
        "images": [
            {"class": "File", "location": "https://example.com/a.tif"},
            {"class": "File", "location": "https://example.com/b.tif"},
        ],
        "reference": {"class": "File", "location": "https://example.com/c.tif"},
        "box": {"west": 1.0, "east": 2.0},
        "either": "s3://not/a/file",
    }
    assert cwl.job_order(doc, "all-types", inputs) == expected
    # The flow builds it from the packed document and its entrypoint: same result.
    packed = cwl.pack(doc, "all-types")
    assert cwl.job_order(packed, cwl.entrypoint(packed), inputs) == expected


def test_job_order_water_bodies_arrays_pass_through(water_bodies: dict[str, Any]) -> None:
    order = cwl.job_order(water_bodies, "water_bodies", {"stac_items": ["a", "b"]})
    assert order == {"stac_items": ["a", "b"]}


def test_typed_qualified_values_as_eoap_parameter_files_write_them() -> None:
    url_class = "https://raw.githubusercontent.com/eoap/schemas/main/url.yaml#URL"
    inputs = {
        "text": "hello",
        "count": 3,
        "big": 1,
        "ratio": 1,
        "precise": 0.5,
        "flag": True,
        "mode": "fast",
        "color": "red",
        "image": {"class": url_class, "value": "https://example.com/a.tif"},
        "folder": {"class": url_class, "value": "https://example.com/item"},
        "images": [{"class": url_class, "value": "https://example.com/b.tif"}],
        "anything": 1,
        "either": 1,
        "box": {"class": "https://example.com/types.yaml#Box", "west": 1.5, "east": 2},
    }

    normalized = cwl.validate_inputs(all_types_description(), inputs)

    assert normalized["image"] == "https://example.com/a.tif"
    assert normalized["folder"] == "https://example.com/item"
    assert normalized["images"] == ["https://example.com/b.tif"]
    assert normalized["box"] == {"west": 1.5, "east": 2}  # a typed record loses its class
    # A typed value still has to fit the input.
    with pytest.raises(InvalidInput) as info:
        cwl.validate_inputs(
            all_types_description(), {**inputs, "count": {"class": "x", "value": "3"}}
        )
    assert list(info.value.errors) == ["count"]
