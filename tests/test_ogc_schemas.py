"""The OGC schema helper accepts the official examples and rejects broken documents.

Known defects of the official files are pinned here, so a schema update that fixes
(or changes) them shows up as a failing test instead of a silent change:

* Part 1 1.0 ``statusInfo.yaml`` requires ``type`` (enum ``["process"]``), but the
  1.0 examples ``StatusInfo*.json`` and the jobs in ``JobList.json`` omit it.
* Part 1 1.0 ``subscriber.yaml`` requires ``successUrl`` while its property is
  ``successUri``.
* Master (Part 2 DRU) ``ogcapppkg.yaml`` requires ``processDescription.process``
  (since commit bb5d9a7, 2025-01-20); the Part 2 ETS package puts the process
  description directly under ``processDescription``. Wrapped, it still fails,
  because master ``processes-core/schema.yaml`` (since 9bf5108, 2026-03-18) only
  accepts ``{"type": "object", "properties": {...}}`` as an input/output schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests import reference
from tests.ogc_schemas import SCHEMA_FILES, _to_draft7, validate

EXAMPLES = Path("part1-1.0__commit-81898e9", "core", "examples", "json")
# The official examples in that folder; listed so that tests are collected without it.
EXAMPLE_FILES = [
    "ConfClasses.json",
    "Execute.json",
    "JobList.json",
    "LandingPage.json",
    "ProcessDescription.json",
    "ProcessList.json",
    "Result.json",
    "StatusInfo-dismissed.json",
    "StatusInfo.json",
]
EXAMPLE_SCHEMA = {
    "ConfClasses": "confClasses",
    "Execute": "execute",
    "JobList": "jobList",
    "LandingPage": "landingPage",
    "ProcessDescription": "process",
    "ProcessList": "processList",
    "Result": "results",
    "StatusInfo": "statusInfo",
}
ETS_PACKAGE = Path("ets-ogcapi-processes10-part2", "ogcapppkg.json")

STATUS_ENUM = "['accepted', 'running', 'successful', 'failed', 'dismissed']"
STATUS = {
    "jobID": "81574318-1eb1-4d7c-af61-4b3fbcf33c4f",
    "type": "process",
    "status": "running",
    "processID": "echo",
    "created": "2024-05-04T10:13:00Z",
    "progress": 40,
    "links": [{"href": "http://example.org/jobs/81574318", "rel": "self"}],
}


@pytest.fixture
def schemas() -> Path:
    """The ``ogcapi-processes`` reference folder (skips without it)."""
    return reference.ogc_schemas()


def _load(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def _violations(instance: object, name: str) -> list[str]:
    """The top-level violation lines of a failing validation."""
    with pytest.raises(AssertionError) as info:
        validate(instance, name)
    lines = str(info.value).splitlines()[1:]
    return [line.strip() for line in lines if line.startswith("  $")]


def _example_schema(name: str) -> str:
    return EXAMPLE_SCHEMA[name.removesuffix(".json").split("-")[0]]


def _add_status_type(example: dict, stem: str) -> dict:
    """Add the ``type: process`` the 1.0 examples omit (see module docstring)."""
    fixed = copy.deepcopy(example)
    for status in fixed["jobs"] if stem == "JobList" else [fixed]:
        status["type"] = "process"
    return fixed


def test_every_example_is_mapped(schemas: Path) -> None:
    assert sorted(p.name for p in (schemas / EXAMPLES).glob("*.json")) == EXAMPLE_FILES
    assert {name.removesuffix(".json").split("-")[0] for name in EXAMPLE_FILES} == set(
        EXAMPLE_SCHEMA
    )
    assert set(EXAMPLE_SCHEMA.values()) <= set(SCHEMA_FILES)


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_official_example_validates(schemas: Path, name: str) -> None:
    example = _load(schemas / EXAMPLES / name)
    if _example_schema(name) in ("statusInfo", "jobList"):
        example = _add_status_type(example, name.removesuffix(".json").split("-")[0])
    validate(example, _example_schema(name))


@pytest.mark.parametrize(
    "name", [n for n in EXAMPLE_FILES if n.startswith("StatusInfo")] + ["JobList.json"]
)
def test_official_status_examples_lack_required_type(schemas: Path, name: str) -> None:
    example = _load(schemas / EXAMPLES / name)
    jobs = example.get("jobs")
    expected = (
        [f"$.jobs[{i}]: 'type' is a required property" for i in range(len(jobs))]
        if jobs is not None
        else ["$: 'type' is a required property"]
    )
    assert _violations(example, _example_schema(name)) == expected


BAD_DOCUMENTS = [
    pytest.param(
        {k: v for k, v in STATUS.items() if k != "jobID"},
        "statusInfo",
        "$: 'jobID' is a required property",
        id="statusInfo-no-jobID",
    ),
    pytest.param(
        {k: v for k, v in STATUS.items() if k != "type"},
        "statusInfo",
        "$: 'type' is a required property",
        id="statusInfo-no-type",
    ),
    pytest.param(
        {**STATUS, "status": "done"},
        "statusInfo",
        f"$.status: 'done' is not one of {STATUS_ENUM}",
        id="statusInfo-status-done",
    ),
    pytest.param(
        {**STATUS, "type": "job"},
        "statusInfo",
        "$.type: 'job' is not one of ['process']",
        id="statusInfo-type-job",
    ),
    pytest.param(
        {**STATUS, "progress": 101},
        "statusInfo",
        "$.progress: 101 is greater than the maximum of 100",
        id="statusInfo-progress-101",
    ),
    pytest.param(
        {**STATUS, "progress": 50.5},
        "statusInfo",
        "$.progress: 50.5 is not of type 'integer'",
        id="statusInfo-progress-float",
    ),
    pytest.param(
        {**STATUS, "created": "2024-05-04 10:13"},
        "statusInfo",
        "$.created: '2024-05-04 10:13' is not a 'date-time'",
        id="statusInfo-created-not-rfc3339",
    ),
    pytest.param(
        {**STATUS, "links": [{"rel": "self"}]},
        "statusInfo",
        "$.links[0]: 'href' is a required property",
        id="statusInfo-link-no-href",
    ),
    pytest.param(
        {"title": "Not Found", "status": 404},
        "exception",
        "$: 'type' is a required property",
        id="exception-no-type",
    ),
    pytest.param(
        {"type": "about:blank", "status": "404"},
        "exception",
        "$.status: '404' is not of type 'integer'",
        id="exception-status-string",
    ),
    pytest.param(
        {"links": []},
        "processList",
        "$: 'processes' is a required property",
        id="processList-no-processes",
    ),
    pytest.param(
        {"processes": []},
        "processList",
        "$: 'links' is a required property",
        id="processList-no-links",
    ),
    pytest.param(
        {"processes": [{"id": "echo"}], "links": []},
        "processList",
        "$.processes[0]: 'version' is a required property",
        id="processList-summary-no-version",
    ),
    pytest.param(
        {"id": "echo", "version": "1.0.0", "jobControlOptions": ["async"]},
        "processSummary",
        "$.jobControlOptions[0]: 'async' is not one of "
        "['sync-execute', 'async-execute', 'dismiss']",
        id="processSummary-bad-jobControlOptions",
    ),
    pytest.param(
        {"id": "echo", "version": "1.0.0", "inputs": {"x": {"title": "x"}}},
        "process",
        "$.inputs.x: 'schema' is a required property",
        id="process-input-no-schema",
    ),
    pytest.param(
        {"conformsTo": "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"},
        "confClasses",
        "$.conformsTo: 'http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core' "
        "is not of type 'array'",
        id="confClasses-conformsTo-not-list",
    ),
    pytest.param(
        {},
        "confClasses",
        "$: 'conformsTo' is a required property",
        id="confClasses-empty",
    ),
    pytest.param(
        {"jobs": []},
        "jobList",
        "$: 'links' is a required property",
        id="jobList-no-links",
    ),
    pytest.param(
        {"jobs": [{"jobID": "a", "type": "process"}], "links": []},
        "jobList",
        "$.jobs[0]: 'status' is a required property",
        id="jobList-job-no-status",
    ),
    pytest.param(
        {"title": "x"},
        "landingPage",
        "$: 'links' is a required property",
        id="landingPage-no-links",
    ),
    pytest.param(
        {"out": {"type": "FeatureCollection", "features": []}},
        "results",
        "$.out: {'type': 'FeatureCollection', 'features': []} "
        "is not valid under any of the given schemas",
        id="results-bare-object",
    ),
    pytest.param(
        {"inputs": {}, "response": "inline"},
        "execute",
        "$.response: 'inline' is not one of ['raw', 'document']",
        id="execute-bad-response",
    ),
    pytest.param(
        {"inputs": {}, "outputs": {"o": {"transmissionMode": "byValue"}}},
        "execute",
        "$.outputs.o.transmissionMode: 'byValue' is not one of ['value', 'reference']",
        id="execute-bad-transmissionMode",
    ),
    pytest.param(
        {"inputs": {}, "subscriber": {"successUri": "http://example.org/cb"}},
        "execute",
        "$.subscriber: 'successUrl' is a required property",
        id="execute-subscriber-typo-quirk",
    ),
    pytest.param(
        {"processDescription": {"process": {"id": "p", "version": "1"}}},
        "ogcapppkg",
        "$: 'executionUnit' is a required property",
        id="ogcapppkg-no-executionUnit",
    ),
]


@pytest.mark.parametrize(("document", "name", "violation"), BAD_DOCUMENTS)
def test_bad_document_is_rejected(document: object, name: str, violation: str) -> None:
    assert violation in _violations(document, name)


def test_every_violation_is_listed() -> None:
    bad = {"jobID": 1, "status": "done", "progress": -1}
    assert _violations(bad, "statusInfo") == [
        "$: 'type' is a required property",
        "$.jobID: 1 is not of type 'string'",
        "$.progress: -1 is less than the minimum of 0",
        f"$.status: 'done' is not one of {STATUS_ENUM}",
    ]


def test_any_of_failure_explains_each_branch() -> None:
    with pytest.raises(AssertionError) as info:
        validate({"out": {"foo": 1}}, "results")
    message = str(info.value)
    assert "      $.out: 'href' is a required property" in message  # link branch
    assert "      $.out: 'value' is a required property" in message  # qualified value branch


GOOD_DOCUMENTS = [
    pytest.param(STATUS, "statusInfo", id="statusInfo"),
    pytest.param(
        {**STATUS, "created": "2024-05-04T10:13:00.123+02:00"},
        "statusInfo",
        id="statusInfo-offset",
    ),
    # Ambiguous under a strict oneOf (issue 350): string | byte, number | integer.
    pytest.param(
        {"s": "abc", "n": 3, "f": 0.5, "b": True, "a": [1, "x"]},
        "results",
        id="results-plain-values",
    ),
    pytest.param(
        {
            "o": {
                "value": {"type": "FeatureCollection"},
                "mediaType": "application/geo+json",
            }
        },
        "results",
        id="results-qualified-object",
    ),
    pytest.param(
        {"o": {"href": "http://example.org/out.tif", "type": "image/tiff"}},
        "results",
        id="results-link",
    ),
    pytest.param({"o": {"bbox": [1, 2, 3, 4]}}, "results", id="results-bbox"),
    pytest.param(
        {"inputs": {"s": "abc", "n": 3}, "response": "document"},
        "execute",
        id="execute-plain",
    ),
    pytest.param(
        {
            "inputs": {},
            "subscriber": {
                "successUrl": "http://example.org/cb",
                "successUri": "http://example.org/cb",
            },
        },
        "execute",
        id="execute-subscriber-with-typo-key",
    ),
    # OpenAPI boolean exclusiveMinimum in schema.yaml: multipleOf > 0, not > True.
    pytest.param(
        {
            "id": "p",
            "version": "1",
            "inputs": {"a": {"schema": {"type": "number", "multipleOf": 0.5}}},
            "outputs": {"b": {"schema": {"type": "string", "nullable": True}}},
        },
        "process",
        id="process-multipleOf-half",
    ),
    pytest.param(
        {"type": "http://example.org/err", "title": "x", "extra": 1},
        "exception",
        id="exception-extra",
    ),
    pytest.param({"jobs": [], "links": []}, "jobList", id="jobList-empty"),
    pytest.param({"processes": [], "links": []}, "processList", id="processList-empty"),
]


@pytest.mark.parametrize(("document", "name"), GOOD_DOCUMENTS)
def test_good_document_is_accepted(document: object, name: str) -> None:
    validate(document, name)


def test_acceptance_walkthrough_requests_validate(app_packages: Path) -> None:
    validate(_load(app_packages / "convert-url-deploy-request.json"), "ogcapppkg")
    validate(_load(app_packages / "convert-url-execute-request.json"), "execute")


def test_ets_part2_package_is_found(schemas: Path) -> None:
    assert [
        p.relative_to(schemas).as_posix()
        for p in (schemas / ETS_PACKAGE.parent).glob("**/ogcapppkg.json")
    ] == [ETS_PACKAGE.as_posix()]


def test_ets_part2_package_execution_unit_validates(schemas: Path) -> None:
    package = _load(schemas / ETS_PACKAGE)
    validate({"executionUnit": package["executionUnit"]}, "ogcapppkg")


def test_ets_part2_package_lacks_process_wrapper(schemas: Path) -> None:
    assert _violations(_load(schemas / ETS_PACKAGE), "ogcapppkg") == [
        "$.processDescription: 'process' is a required property"
    ]


def test_ets_part2_package_wrapped_hits_master_schema_yaml(schemas: Path) -> None:
    package = _load(schemas / ETS_PACKAGE)
    wrapped = {
        "processDescription": {"process": package["processDescription"]},
        "executionUnit": package["executionUnit"],
    }
    violations = _violations(wrapped, "ogcapppkg")
    assert violations
    assert all(v.startswith("$.processDescription.process.") and ".schema" in v for v in violations)


def test_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown schema 'status'"):
        validate({}, "status")


def test_transform_rewrites_keywords_not_property_names() -> None:
    schema = {
        "type": "object",
        "properties": {
            "oneOf": {"type": "string", "nullable": True, "enum": ["a"]},
            "nullable": {"type": "boolean"},
            "m": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "k": {"oneOf": [{"type": "integer"}], "example": {"oneOf": "data"}},
        },
    }
    assert _to_draft7(schema) == {
        "type": "object",
        "properties": {
            "oneOf": {"type": ["string", "null"], "enum": ["a", None]},
            "nullable": {"type": "boolean"},
            "m": {"type": "number", "exclusiveMinimum": 0},
            "k": {"anyOf": [{"type": "integer"}], "example": {"oneOf": "data"}},
        },
    }
