"""Files come from URLs, never the engine's disk: execute inputs and package defaults
(``cwlpkg.locations``, ``cwlpkg.inputs``), without a network."""

from __future__ import annotations

from typing import Any

import pytest

import cwlpkg as cwl
from core.exceptions import InvalidInput, InvalidPackage
from tests.cwlpkg.samples import ALL_TYPES

_TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
id: reader
baseCommand: cat
inputs:
  f:
    type: File
    inputBinding: {position: 1}
    %s
  n:
    type: string
    default: plain
outputs: []
"""


def _packed(default: str = "") -> dict[str, Any]:
    doc = cwl.parse_document(_TOOL % default)
    cwl.validate_document(doc)
    return cwl.pack(doc, "reader")


def _description() -> dict[str, Any]:
    return cwl.describe(cwl.parse_document(ALL_TYPES), "all-types")


@pytest.mark.parametrize(
    "inputs",
    [
        {"image": "file:///etc/passwd"},
        {"image": {"href": "file:///etc/passwd"}},
        {"image": "/etc/passwd"},
        {"images": ["https://example.com/a.tif", "file:///etc/shadow"]},
        {"folder": "ftp://example.com/data/"},
        {"anything": {"class": "File", "location": "file:///etc/passwd"}},
        {"anything": {"class": "File", "path": "/etc/passwd"}},
        {
            "anything": [
                {"class": "Directory", "location": "https://example.com/d/"},
                {"class": "File", "location": "etc/passwd"},
            ]
        },
        {
            "anything": {
                "class": "Directory",
                "listing": [{"class": "File", "location": "https://example.com/a"}],
            }
        },
    ],
)
def test_no_input_may_name_a_file_of_the_host(inputs: dict[str, Any]):
    with pytest.raises(InvalidInput) as refused:
        cwl.validate_inputs(_description(), inputs)
    [name] = inputs
    assert name in refused.value.errors
    assert "URL" in refused.value.errors[name] or "location" in refused.value.errors[name]


_REQUIRED = {
    "text": "hello",
    "count": 3,
    "big": 4,
    "ratio": 1,
    "precise": 0.25,
    "flag": False,
    "mode": "fast",
    "color": "red",
    "folder": "https://example.com/catalog.json",
    "either": 7,
    "box": {"west": 1.5, "east": 2},
}


def test_urls_and_literals_are_accepted():
    inputs = {
        **_REQUIRED,
        "image": {"href": "s3://bucket/image.tif"},
        "images": ["https://example.com/a.tif", "http://example.com/b.tif"],
        "anything": {"class": "File", "basename": "a.txt", "contents": "inline"},
    }
    assert cwl.validate_inputs(_description(), inputs)


def test_file_urls_lists_what_a_job_fetches_over_http():
    description = _description()
    inputs = cwl.validate_inputs(
        description,
        {
            **_REQUIRED,
            "text": "http://example.com/not-a-file",  # a string input stays a string
            "image": {"href": "s3://bucket/image.tif"},  # read from the stage-in endpoint
            "folder": "https://example.com/catalog.json",
            "images": ["https://example.com/a.tif", {"href": "https://example.com/b.tif"}],
            "anything": {"class": "File", "location": "http://example.com/c"},
            "either": "http://example.com/d",  # a union: passed on as it is, never fetched
        },
    )
    assert sorted(cwl.file_urls(description, inputs)) == [
        ("anything", "http://example.com/c"),
        ("folder", "https://example.com/catalog.json"),
        ("images", "https://example.com/a.tif"),
        ("images", "https://example.com/b.tif"),
    ]


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "file:///no/such/file", "/etc/passwd", "relative.txt"]
)
def test_a_package_default_on_the_host_is_refused_at_deploy(location: str):
    packed = _packed(f"default: {{class: File, location: {location}}}")
    with pytest.raises(InvalidPackage, match="default of input 'f'") as refused:
        cwl.check_package_files(packed, "main")
    # Nothing was looked at: the words are the same whether the path exists or not.
    assert "exist" not in refused.value.detail


def test_a_file_anywhere_else_in_a_package_is_refused():
    doc = cwl.parse_document(_TOOL % "")
    packed = cwl.pack(doc, "reader")
    packed["$graph"][0]["requirements"] = [
        {
            "class": "InitialWorkDirRequirement",
            "listing": [{"class": "File", "location": "https://example.com/fetched-by-cwltool"}],
        }
    ]
    with pytest.raises(InvalidPackage, match="only as http"):
        cwl.check_package_files(packed, "main")


def test_a_remote_default_is_staged_like_an_input():
    packed = _packed("default: {class: File, location: 'https://example.com/d.tif'}")
    cwl.check_package_files(packed, "main")
    order = cwl.job_order(packed, "main", {"n": "x"})
    assert order == {"f": {"class": "File", "location": "https://example.com/d.tif"}, "n": "x"}
    given = cwl.job_order(packed, "main", {"f": "https://example.com/mine.tif"})
    assert given["f"] == {"class": "File", "location": "https://example.com/mine.tif"}
