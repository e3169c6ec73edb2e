"""CWL documents: parse, choose the process, validate with cwltool, pack (``cwlpkg.document``).

The network is blocked in this process for every test (``tests/cwlpkg/conftest.py``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import cwlpkg as cwl
from core.exceptions import InvalidPackage
from cwlpkg import _structure
from tests.cwlpkg.samples import ALL_TYPES, CONVERT_URL


def test_step_count_counts_the_workflow_steps(water_bodies: dict[str, Any]) -> None:
    doc = water_bodies
    root = cwl.select_workflow(doc, None)
    assert cwl.step_count(doc, root) == len(_structure.find_process(doc, root)["steps"]) > 0
    tool = cwl.parse_document(
        "cwlVersion: v1.2\nclass: CommandLineTool\nid: t\n"
        "baseCommand: echo\ninputs: []\noutputs: []\n"
    )
    assert cwl.step_count(tool, "t") == 0


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


# --- packing --------------------------------------------------------------


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
