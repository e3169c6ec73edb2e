"""The WPS's parts that need no server: request parsing, the safe XML parser, the mapping of
OGC descriptions and values to WPS data, ExceptionReports."""

from __future__ import annotations

import pytest
from lxml import etree

from api_gateway.wps.datatypes import (
    InputValue,
    describe_inputs,
    describe_outputs,
    guess_outputs,
    output_values,
    to_ogc_input,
)
from api_gateway.wps.exceptions import exception_report, is_wps_path
from api_gateway.wps.request import from_kvp, negotiate
from api_gateway.wps.xmlio import parse_request
from core.exceptions import OwsException
from tests.api_gateway.test_wps_errors import BILLION_LAUGHS, XXE
from tests.wps_schemas import validate_if_available

FILE_INPUT = {
    "oneOf": [
        {"type": "string", "format": "uri"},
        {"type": "object", "required": ["href"], "properties": {"href": {"type": "string"}}},
    ]
}
DESCRIPTION = {
    "inputs": {
        "s": {"title": "S", "schema": {"type": "string"}, "minOccurs": 1, "maxOccurs": 1},
        "i": {"schema": {"type": "integer", "default": 3}, "minOccurs": 0, "maxOccurs": 1},
        "n": {"schema": {"type": "number", "minimum": 0, "maximum": 1}, "minOccurs": 1},
        "b": {"schema": {"type": "boolean"}},
        "e": {"schema": {"type": "string", "enum": ["x", "y"]}},
        "f": {"schema": FILE_INPUT},
        "files": {"schema": {"type": "array", "items": FILE_INPUT}, "minOccurs": 0},
        "box": {
            "schema": {
                "type": "object",
                "properties": {"bbox": {"type": "array"}, "crs": {"type": "string"}},
            }
        },
        "ogc_box": {"schema": {"type": "object", "format": "ogc-bbox"}},
        "any": {"schema": {}},
        "rec": {"schema": {"type": "object", "properties": {"a": {"type": "integer"}}}},
        "when": {"schema": {"type": "string", "format": "date-time"}},
    },
    "outputs": {
        "text": {"schema": {"type": "string"}},
        "image": {"schema": {"type": "string", "format": "uri", "contentMediaType": "image/png"}},
        "folder": {"schema": {"type": "string", "format": "uri"}},
        "doc": {"schema": {"type": "object"}},
    },
}


def _inputs():
    return {d.id: d for d in describe_inputs(DESCRIPTION)}


def test_ogc_schemas_map_to_wps_data():
    d = _inputs()
    assert [d[k].kind for k in ("s", "i", "n", "b", "e", "when")] == ["literal"] * 6
    assert [d[k].data_type for k in ("s", "i", "n", "b", "when")] == [
        "string",
        "integer",
        "double",
        "boolean",
        "dateTime",
    ]
    assert d["i"].default == 3 and d["i"].min_occurs == 0 and d["s"].min_occurs == 1
    assert (d["n"].minimum, d["n"].maximum) == (0, 1)
    assert d["e"].allowed == ("x", "y")
    assert d["f"].kind == "complex" and d["f"].media_types == ("application/octet-stream",)
    assert d["files"].kind == "complex" and d["files"].array and d["files"].max_occurs is None
    assert d["box"].kind == d["ogc_box"].kind == "bbox"
    assert d["any"].kind == d["rec"].kind == "json"
    outputs = {o.id: o for o in describe_outputs(DESCRIPTION)}
    assert [outputs[k].kind for k in ("text", "image", "folder", "doc")] == [
        "literal",
        "complex",
        "complex",
        "json",
    ]
    assert outputs["image"].media_types == ("image/png",)


@pytest.mark.parametrize(
    ("name", "given", "value"),
    [
        ("i", [InputValue("i", text=" 7 ")], 7),
        ("n", [InputValue("n", text="0.5")], 0.5),
        ("b", [InputValue("b", text="TRUE")], True),
        ("s", [InputValue("s", text=" keep spaces ")], " keep spaces "),
        ("f", [InputValue("f", href="https://x/a.tif", mime_type="image/tiff")],
         {"href": "https://x/a.tif", "type": "image/tiff"}),
        ("f", [InputValue("f", text="s3://bucket/a.tif")], "s3://bucket/a.tif"),
        ("files", [InputValue("files", href="https://x/1"), InputValue("files", href="https://x/2")],
         ["https://x/1", "https://x/2"]),
        ("box", [InputValue("box", bbox=[1.0, 2.5, 3.0, 4.0], crs="EPSG:4326")],
         {"bbox": [1, 2.5, 3, 4], "crs": "EPSG:4326"}),
        ("box", [InputValue("box", text="1,2,3,4")],
         {"bbox": [1, 2, 3, 4], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}),
        ("ogc_box", [InputValue("ogc_box", text="1,2,3,4,urn:ogc:def:crs:EPSG::4326")],
         {"bbox": [1, 2, 3, 4], "crs": "urn:ogc:def:crs:EPSG::4326"}),
        ("rec", [InputValue("rec", text='{"a": 1}', mime_type="application/json")], {"a": 1}),
        ("any", [InputValue("any", text="plain")], "plain"),
    ],
)  # fmt: skip
def test_wps_values_become_ogc_values(name, given, value):
    assert to_ogc_input(_inputs()[name], given, version="1.0.0") == value


@pytest.mark.parametrize(
    ("name", "given", "code"),
    [
        ("i", [InputValue("i", text="1.5")], "InvalidParameterValue"),
        ("n", [InputValue("n", text="nan")], "InvalidParameterValue"),
        ("b", [InputValue("b", text="yes")], "InvalidParameterValue"),
        ("f", [InputValue("f", text="inline content")], "InvalidParameterValue"),
        ("f", [InputValue("f", text="<a/>", xml=True)], "InvalidParameterValue"),
        ("s", [InputValue("s", href="https://x")], "InvalidParameterValue"),
        ("box", [InputValue("box", text="1,2,3")], "InvalidParameterValue"),
        ("s", [InputValue("s", text="a"), InputValue("s", text="b")], "TooManyInputs"),
    ],
)
def test_wps_values_that_cannot_be(name, given, code):
    with pytest.raises(OwsException) as caught:
        to_ogc_input(_inputs()[name], given, version="2.0.0")
    assert caught.value.code == code and caught.value.locator == name


def test_results_become_wps_outputs():
    stac = {"stac_version": "1.0.0", "type": "Catalog", "href": "https://x/catalog.json"}
    results = {
        "text": "ok",
        "image": {"href": "https://x/a.png", "type": "image/png"},
        "folder": stac,
        "doc": {"a": 1},
    }
    values = {v.id: v for v in output_values(describe_outputs(DESCRIPTION), results)}
    assert (values["text"].kind, values["text"].value) == ("literal", "ok")
    assert (values["image"].href, values["image"].mime_type) == ("https://x/a.png", "image/png")
    assert (values["folder"].href, values["folder"].mime_type) == (stac["href"], "application/json")
    assert values["doc"].kind == "json"
    folder = {"href": "file:///r/out/", "type": "application/x-directory", "files": []}
    guessed = {d.id: d for d in guess_outputs({"n": 2, "f": [folder], "b": {"bbox": [1]}})}
    assert (guessed["n"].kind, guessed["n"].data_type) == ("literal", "integer")
    assert guessed["f"].kind == "complex" and guessed["f"].array
    assert guessed["b"].kind == "bbox"


def test_kvp_requests():
    request = from_kvp(
        "SERVICE=wps&Request=execute&VERSION=1.0.0&Identifier=p"
        "&DataInputs=a=x%3By;b=@xlink:href=https%3A%2F%2Fh%2Ff%3Fq%3D1@mimeType=text/plain"
        "&ResponseDocument=out@asReference=true&storeExecuteResponse=true&status=true"
    )
    assert (request.operation, request.version, request.mode) == ("Execute", "1.0.0", "async")
    assert [(i.id, i.text, i.href) for i in request.inputs] == [
        ("a", "x;y", None),
        ("b", None, "https://h/f?q=1"),
    ]
    assert request.inputs[1].mime_type == "text/plain"
    assert [(o.id, o.by_reference) for o in request.outputs] == [("out", True)]
    whole = from_kvp("service=WPS&request=Execute&version=1.0.0&identifier=p"
                     "&DataInputs=a%3D1%3Bb%3D2&RawDataOutput=out")  # fmt: skip
    assert [(i.id, i.text) for i in whole.inputs] == [("a", "1"), ("b", "2")] and whole.raw
    status = from_kvp("service=WPS&request=GetStatus&version=2.0.0&JOBID=j")
    assert (status.operation, status.job_id) == ("GetStatus", "j")


def test_version_negotiation():
    assert negotiate(None, None) == "1.0.0"
    assert negotiate(["3.0.0", "2.0.0", "1.0.0"], None) == "2.0.0"
    assert negotiate(None, "2.0.0") == "2.0.0"
    with pytest.raises(OwsException, match="AcceptVersions") as caught:
        negotiate(["0.1"], "1.0.0")
    assert caught.value.code == "VersionNegotiationFailed"


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, b"<!DOCTYPE a><a/>", b"", b"<a>", b"\xff"])
def test_the_parser_refuses_what_a_request_never_needs(body):
    with pytest.raises(OwsException) as caught:
        parse_request(body)
    assert caught.value.code == "NoApplicableCode"


def test_the_parser_reads_plain_documents():
    root = parse_request(b"<?xml version='1.0'?><a><!-- c --><?pi x?><b>t</b></a>")
    assert etree.tostring(root) == b"<a><b>t</b></a>"


def test_exception_reports_are_valid_and_escaped():
    for version in ("1.0.0", "2.0.0"):
        report = exception_report(version, "NoSuchJob", "a <b> & \x00 c", "id")
        content = etree.tostring(report, xml_declaration=True, encoding="UTF-8")
        validate_if_available(content, version)
        assert b"a &lt;b&gt; &amp;  c" in content


def test_wps_paths():
    assert is_wps_path("/wps") and is_wps_path("/alice/wps") and is_wps_path("/wps/jobs/x")
    assert is_wps_path("/alice/wps/jobs/x")
    assert not is_wps_path("/wps/ogc-api/jobs") and not is_wps_path("/alice/ogc-api/wps")
