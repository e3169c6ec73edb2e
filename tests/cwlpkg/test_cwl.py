"""CWL handling: the real application packages deploy, describe, validate and run.

Descriptions are checked against the official OGC Part 1 1.0 ``process.yaml``
(``tests.ogc_schemas``). The network is blocked in this process for every test
(``_no_network``); the one cwltool run is a subprocess with a stand-in ``convert.sh``.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from core.exceptions import InvalidInput, InvalidPackage
from cwlpkg import cwl
from tests import reference
from tests.ogc_schemas import validate as validate_ogc

CONVERT_URL = "convert-url-app.cwl"  # in the reference folder app-packages/ (app_packages)
WATER_BODIES = "app-water-bodies-cloud-native.1.5.0.cwl"

# package -> (process chosen without ?w=, version, inputs, outputs)
EXPECTED = {
    "convert-url-app.cwl": ("convert-url", "0.1.2", ["fn", "url", "size"], ["converted_image"]),
    "app-water-bodies-cloud-native.1.5.0.cwl": (
        "water_bodies",
        "1.4.1",  # the file's s:softwareVersion, whatever its name says
        ["aoi", "epsg", "stac_items", "bands"],
        ["stac_catalog"],
    ),
    "water-bodies-1.4.1-dash-id.cwl": (
        "water-bodies",
        "1.4.1",
        ["aoi", "epsg", "stac_items", "bands"],
        ["stac"],
    ),
    "wes-example-app-package.cwl": (
        "water_bodies",
        "1.1.7",
        ["aoi", "epsg", "stac_items"],
        ["stac_catalog"],
    ),
}

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


@pytest.fixture(scope="session")
def _reference_at_hand() -> None:
    """Reference material missing here is fetched (or found missing) before the network
    is blocked: that fetch is the tests' own, not the code's under test."""
    reference.find(reference.APP_PACKAGES)
    reference.find(reference.OGC_SCHEMAS)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, _reference_at_hand: None) -> None:
    """Any attempt to open a connection from this process fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def load(path: Path) -> dict[str, Any]:
    return cwl.parse_document(path.read_bytes(), base_uri=path.as_uri())


@pytest.fixture
def convert_url(app_packages: Path) -> dict[str, Any]:
    """The EOEPCA ``convert-url`` package, parsed (a new copy per test: tests change it)."""
    return load(app_packages / CONVERT_URL)


@pytest.fixture
def water_bodies(app_packages: Path) -> dict[str, Any]:
    """The EOEPCA water-bodies package (Workflow ``water_bodies``, sub-workflow), parsed."""
    return load(app_packages / WATER_BODIES)


def without_ogc_extras(description: dict[str, Any]) -> None:
    for key in ("links", "jobControlOptions", "outputTransmission"):
        assert key not in description


def test_step_count_counts_the_workflow_steps(water_bodies: dict[str, Any]) -> None:
    doc = water_bodies
    root = cwl.select_workflow(doc, None)
    assert cwl.step_count(doc, root) == len(cwl._process(doc, root)["steps"]) > 0
    tool = cwl.parse_document(
        "cwlVersion: v1.2\nclass: CommandLineTool\nid: t\n"
        "baseCommand: echo\ninputs: []\noutputs: []\n"
    )
    assert cwl.step_count(tool, "t") == 0


def test_public_surface() -> None:
    assert sorted(cwl.__all__) == [
        "describe",
        "entrypoint",
        "input_schema",
        "job_order",
        "pack",
        "parse_document",
        "select_workflow",
        "step_count",
        "validate_document",
        "validate_inputs",
        "workflow_ids",
    ]
    assert all(callable(getattr(cwl, name)) and getattr(cwl, name).__doc__ for name in cwl.__all__)


# --- every real package -----------------------------------------------------------


def test_every_real_package_is_expected(app_packages: Path) -> None:
    names = sorted(p.name for p in app_packages.glob("*.cwl"))
    assert names == sorted(EXPECTED), "a package was added: add it to EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_package_deploys_and_describes(
    name: str, app_packages: Path, capsys: pytest.CaptureFixture
) -> None:
    process_id, version, inputs, outputs = EXPECTED[name]
    doc = load(app_packages / name)

    cwl.validate_document(doc)
    assert cwl.select_workflow(doc, None) == process_id
    description = cwl.describe(doc, process_id)

    validate_ogc(description, "process")
    without_ogc_extras(description)
    assert description["id"] == process_id
    assert description["version"] == version
    assert list(description["inputs"]) == inputs
    assert list(description["outputs"]) == outputs
    schema = cwl.input_schema(description)
    Draft202012Validator.check_schema(schema)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_package_packs_with_main_entrypoint(name: str, app_packages: Path) -> None:
    doc = load(app_packages / name)
    process_id = cwl.select_workflow(doc, None)
    packed = cwl.pack(doc, process_id)

    assert json.loads(json.dumps(packed)) == packed
    assert cwl.entrypoint(packed) == "main"
    assert packed["cwlVersion"] == "v1.0"
    assert "$schemas" not in packed and "schemas" not in packed
    # A packed document deploys too (users upload `cwltool --pack` output).
    cwl.validate_document(packed)
    assert cwl.select_workflow(packed, None) == "main"
    assert (
        cwl.describe(packed, "main")["inputs"].keys()
        == cwl.describe(doc, process_id)["inputs"].keys()
    )


def test_parse_yaml_json_and_bytes_agree(app_packages: Path) -> None:
    text = (app_packages / CONVERT_URL).read_text()
    doc = cwl.parse_document(text)

    assert cwl.parse_document(text.encode()) == doc
    assert cwl.parse_document(json.dumps(doc, indent="\t")) == doc
    assert type(doc) is dict and type(doc["$graph"]) is list
    assert doc["s:softwareVersion"] == "0.1.2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cwlVersion: v1.0\nclass: [Workflow\nid: x\n", "line 3"),
        ("cwlVersion: v1.0\ncwlVersion: v1.1\n", "duplicate key"),
        ("- a\n- b\n", "must be a mapping"),
        ("", "must be a mapping"),
        (b"\xff\xfe\x00x", "not UTF-8"),
        ("a: !custom tag\n", "custom YAML tags"),
    ],
)
def test_parse_rejects_bad_text(text: str | bytes, expected: str) -> None:
    with pytest.raises(InvalidPackage, match=expected) as info:
        cwl.parse_document(text, base_uri="https://example.com/app.cwl")
    assert info.value.detail.startswith("https://example.com/app.cwl: ")


# --- choosing the workflow ----------------------------------------------------------


def test_workflow_ids_lists_graph_workflows_only(water_bodies: dict[str, Any]) -> None:
    assert cwl.workflow_ids(water_bodies) == ["water_bodies", "detect_water_body"]
    assert cwl.workflow_ids(cwl.parse_document(ALL_TYPES)) == []


def test_select_workflow_with_w(water_bodies: dict[str, Any]) -> None:
    doc = water_bodies

    assert cwl.select_workflow(doc, "detect_water_body") == "detect_water_body"
    with pytest.raises(InvalidPackage, match="no Workflow 'nope'") as info:
        cwl.select_workflow(doc, "nope")
    assert "water_bodies, detect_water_body" in info.value.detail


def test_select_workflow_refuses_several_roots(convert_url: dict[str, Any]) -> None:
    doc = convert_url
    twin = copy.deepcopy(doc["$graph"][0])
    twin["id"] = "convert-url-twin"
    doc["$graph"].append(twin)

    with pytest.raises(InvalidPackage, match=r"convert-url, convert-url-twin.*\?w=") as info:
        cwl.select_workflow(doc, None)
    assert "root" in info.value.detail
    assert cwl.select_workflow(doc, "convert-url-twin") == "convert-url-twin"


def test_select_single_tool_and_missing_id() -> None:
    doc = cwl.parse_document(ALL_TYPES)
    assert cwl.select_workflow(doc, None) == "all-types"

    del doc["id"]
    with pytest.raises(InvalidPackage, match="has no `id`"):
        cwl.select_workflow(doc, None)


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v0.9", "v2.0", "draft-3", None])
def test_validate_refuses_unsupported_versions(
    version: str | None, convert_url: dict[str, Any]
) -> None:
    doc = convert_url
    doc["cwlVersion"] = version
    if version is None:
        del doc["cwlVersion"]

    with pytest.raises(InvalidPackage, match=r"supports CWL v1\.0, v1\.1, v1\.2"):
        cwl.validate_document(doc)


@pytest.mark.parametrize("version", ["v1.1", "v1.2"])
def test_validate_accepts_newer_versions(version: str, convert_url: dict[str, Any]) -> None:
    doc = convert_url
    doc["cwlVersion"] = version
    cwl.validate_document(doc)


def test_validate_reports_schema_errors_readably(
    capsys: pytest.CaptureFixture, convert_url: dict[str, Any]
) -> None:
    doc = convert_url
    del doc["$graph"][0]["steps"]["convert"]["run"]

    with pytest.raises(InvalidPackage) as info:
        cwl.validate_document(doc)
    detail = info.value.detail
    assert "missing required field 'run'" in detail
    assert "'#convert-url'" in detail
    assert "package.cwl" not in detail and len(detail) <= 2000
    assert capsys.readouterr().out == ""


def test_validate_runs_static_checks(convert_url: dict[str, Any]) -> None:
    doc = convert_url
    doc["$graph"][1]["inputs"]["fn"]["type"] = "int"

    with pytest.raises(InvalidPackage, match=r"(?s)Source 'fn' of type \"string\".*int"):
        cwl.validate_document(doc)


def test_validate_long_messages_are_trimmed(water_bodies: dict[str, Any]) -> None:
    doc = water_bodies
    for process in doc["$graph"]:
        process.pop("outputs", None)
        process.pop("inputs", None)

    with pytest.raises(InvalidPackage) as info:
        cwl.validate_document(doc)
    assert len(info.value.detail) <= 2000


@pytest.mark.parametrize(
    ("where", "ref", "expected"),
    [
        ("run", "other.cwl", "undefined reference"),
        ("run", "/etc/hostname", "undefined reference"),
        ("hints", {"$import": "https://example.com/hints.yml"}, "self-contained"),
    ],
)
def test_validate_refuses_external_references(
    where: str, ref: object, expected: str, convert_url: dict[str, Any]
) -> None:
    doc = convert_url
    if where == "run":
        doc["$graph"][0]["steps"]["convert"]["run"] = ref
    else:
        doc["$graph"][1]["hints"] = ref

    with pytest.raises(InvalidPackage, match=expected):
        cwl.validate_document(doc)


def test_validate_refuses_run_cycles(water_bodies: dict[str, Any]) -> None:
    doc = water_bodies
    doc["$graph"][1]["steps"]["node_otsu"]["run"] = "#water_bodies"

    with pytest.raises(
        InvalidPackage, match="cycle: water_bodies -> detect_water_body -> water_bodies"
    ):
        cwl.validate_document(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"cwlVersion": "v1.0", "$graph": [5]},
        {"cwlVersion": "v1.0", "class": "CommandLineTool", "inputs": 5, "outputs": []},
        {"cwlVersion": "v1.0", "$graph": 5},
        {"cwlVersion": "v1.0"},
    ],
)
def test_validate_malformed_structure(doc: dict[str, Any]) -> None:
    with pytest.raises(InvalidPackage, match="The CWL document is not valid"):
        cwl.validate_document(doc)


def test_validate_single_tool_with_schemas_field() -> None:
    doc = cwl.parse_document(ALL_TYPES)
    assert "schemas" in doc  # not a CWL field: stripped before cwltool sees it
    cwl.validate_document(doc)
    cwl.validate_document({**doc, "$schemas": ["https://example.com/ontology.rdf"]})


def test_validate_then_other_document_is_not_cached(convert_url: dict[str, Any]) -> None:
    good = convert_url
    bad = copy.deepcopy(good)
    bad["$graph"][0]["inputs"]["fn"]["type"] = "strin"

    cwl.validate_document(good)
    with pytest.raises(InvalidPackage, match="unknown identifier 'strin'"):
        cwl.validate_document(bad)
    cwl.validate_document(good)


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
        "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
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


# --- execute requests -------------------------------------------------------------------


def all_types_description() -> dict[str, Any]:
    return cwl.describe(cwl.parse_document(ALL_TYPES), "all-types")


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
    assert "'not a url' is not a 'uri'" in errors["image"]
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


# --- packing and running --------------------------------------------------------------


def test_pack_sub_workflow_keeps_only_what_it_runs(water_bodies: dict[str, Any]) -> None:
    packed = cwl.pack(water_bodies, "detect_water_body")

    ids = sorted(process["id"] for process in packed["$graph"])
    assert ids == ["#crop", "#main", "#norm_diff", "#otsu"]
    assert cwl.entrypoint(packed) == "main"


def test_pack_single_tool_and_errors(convert_url: dict[str, Any]) -> None:
    packed = cwl.pack(cwl.parse_document(ALL_TYPES), "all-types")
    assert [process["id"] for process in packed["$graph"]] == ["#main"]
    assert "$schemas" not in packed["$graph"][0]

    with pytest.raises(InvalidPackage, match="no process 'nope'"):
        cwl.pack(convert_url, "nope")
    with pytest.raises(InvalidPackage, match="no process `#main`"):
        cwl.entrypoint(convert_url)


def test_packed_convert_url_runs_with_cwltool(tmp_path: Path, convert_url: dict[str, Any]) -> None:
    """The packed workflow runs as ``cwltool packed.cwl#main job.json`` (no container)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "convert.sh"
    stand_in.write_text('#!/bin/sh\necho "$@" > converted.txt\n')
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    doc = convert_url
    description = cwl.describe(doc, "convert-url")
    inputs = cwl.validate_inputs(description, {"fn": {"value": "resize"}, "size": "10%"})
    packed = cwl.pack(doc, "convert-url")
    (tmp_path / "packed.cwl").write_text(json.dumps(packed))
    (tmp_path / "job.json").write_text(json.dumps(cwl.job_order(doc, "convert-url", inputs)))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cwltool",
            "--no-container",
            "--outdir",
            str(tmp_path / "out"),
            f"{tmp_path / 'packed.cwl'}#{cwl.entrypoint(packed)}",
            str(tmp_path / "job.json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    output = json.loads(run.stdout)["converted_image"]
    assert output["class"] == "Directory"
    converted = Path(output["path"]) / "converted.txt"
    default_url = description["inputs"]["url"]["schema"]["default"]
    assert converted.read_text() == f"resize --url {default_url} 10%\n"
