"""The OGC Executable Test Suites' client side, re-implemented from their Java source.

Part 1: ``opengeospatial/ets-ogcapi-processes10`` @ 75abd1f (2025-02-06), Part 2:
``opengeospatial/ets-ogcapi-processes10-part2`` @ b42aeab (2025-05-12). Source lines are
cited as ``Jobs.java:1234`` (Part 1, ``src/main/java/org/opengis/cite/
ogcapiprocesses10/``) or ``part2 dru/Default.java:123``.

What the suites do, here in Python with the same values:

* the echo process is read once (``Jobs.parseEchoProcess`` → ``CommonFixture.createInput``
  and ``createOutput``): every input becomes an :class:`Input` with its types;
* the execute bodies are built as ``Jobs.createExecuteJsonNode*`` build them: a plain
  string input gets ``"teststring"``, a bounding box ``{"crs": "urn:ogc:def:crs:EPSG:6.6:
  4326", "bbox": [345345345, ...]}``, an object ``{"value": "teststring"}`` (``addInput``,
  ``addObjectInput``), every output ``{"transmissionMode": "value"}``;
* responses are validated against the Part 1 1.0 schemas where the suites validate them
  with ``api-processes10.yaml`` (the OpenAPI document that refs those same schemas).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.ogc_schemas import validate

__all__ = [
    "TEST_STRING",
    "EchoProcess",
    "Input",
    "loop_over_status",
    "multipart_contains_test_string",
    "send_async",
    "send_sync",
]

TEST_STRING = "teststring"  # Jobs.java TEST_STRING_INPUT
TIMEOUT_S = 120.0
# Jobs.loopOverStatus polls MAX_ATTEMPTS (4) times every 5 s: 20 s. The embedded stack
# is slower on a loaded 2-core machine, so the poll here has a longer deadline.
POLL_DEADLINE_S = 90.0
# The suite's tiny test GeoTIFF (src/main/resources/.../testdata/testgeotiff.tiff) is
# not copied: any bytes with a TIFF header stand for it (the value is only echoed).
TIFF_BYTES = b"II*\x00" + bytes(60)


@dataclass
class Type:
    """``CommonFixture.Type``."""

    definition: str
    content_media_type: str | None = None
    content_encoding: str | None = None
    binary: bool = False


@dataclass
class Input:
    """``CommonFixture.Input``: an input id, its types, bbox-ness and format."""

    id: str
    types: list[Type] = field(default_factory=list)
    bbox: bool = False
    format: str | None = None


@dataclass
class Output:
    id: str
    types: list[Type] = field(default_factory=list)
    bbox: bool = False


def _type_of(schema: dict[str, Any], item: Input) -> Type:
    """One branch of ``createInput``: a typed schema (or oneOf member)."""
    kind = Type(str(schema["type"]))
    if kind.definition == "object":
        if "bbox" in (schema.get("properties") or {}):
            item.bbox = True
    elif kind.definition == "string":
        if schema.get("format") == "byte":
            kind.binary = True
        kind.content_media_type = schema.get("contentMediaType")
        kind.content_encoding = schema.get("contentEncoding")
        if kind.content_encoding == "binary":
            kind.binary = True
    elif kind.definition == "array":
        items_type = (schema.get("items") or {}).get("type")
        if items_type is not None:
            item.types.append(Type(str(items_type)))
    return kind


def create_input(schema: dict[str, Any], input_id: str) -> Input:
    """``CommonFixture.createInput`` (CommonFixture.java:286)."""
    item = Input(input_id)
    if "type" in schema:
        if schema["type"] == "string" and "format" in schema:
            item.format = schema["format"]
        item.types.append(_type_of(schema, item))
    elif "oneOf" in schema:
        for member in schema["oneOf"]:
            if "type" in member:
                item.types.append(_type_of(member, item))
    elif any(part.get("format") == "ogc-bbox" for part in schema.get("allOf", [])):
        item.bbox = True
    return item


def create_output(schema: dict[str, Any], output_id: str) -> Output:
    """``CommonFixture.createOutput``: only arrays and allOf-bboxes are noted."""
    out = Output(output_id)
    if schema.get("type") == "array":
        out.types.append(Type("array"))
    elif "type" not in schema and any(
        part.get("format") == "ogc-bbox" for part in schema.get("allOf", [])
    ):
        out.bbox = True
    return out


class EchoProcess:
    """The echo process as ``Jobs.setup``/``parseEchoProcess`` see it, and its bodies."""

    def __init__(self, root: str, process_id: str = "echo") -> None:
        self.root = root
        self.process_id = process_id
        self.execute_url = f"{root}/processes/{process_id}/execution"
        description = requests.get(
            f"{root}/processes/{process_id}",
            headers={"Accept": "application/json"},
            timeout=TIMEOUT_S,
        ).json()
        self.description = description
        self.inputs = [create_input(v["schema"], k) for k, v in description["inputs"].items()]
        self.outputs = [create_output(v["schema"], k) for k, v in description["outputs"].items()]
        options = description.get("jobControlOptions", [])
        self.supports_async = "async-execute" in options  # echoProcessSupportsAsync
        sync = "sync-execute" in options
        self.modes = (
            "EITHER" if sync and self.supports_async else "ONLY_SYNC" if sync else "ONLY_ASYNC"
        )

    # --- Jobs.addInput and friends -------------------------------------------------

    def add_input(self, item: Input, inputs: dict[str, Any]) -> None:
        """``Jobs.addInput`` (Jobs.java:340): strings, bboxes and objects only."""
        for kind in item.types:
            if kind.definition == "string":
                if item.format is None and kind.content_media_type is None:
                    inputs[item.id] = TEST_STRING
            elif item.bbox:
                inputs[item.id] = {"crs": "urn:ogc:def:crs:EPSG:6.6:4326", "bbox": [345345345] * 4}
            elif kind.definition == "object":
                inputs[item.id] = {"value": TEST_STRING}  # addObjectInput

    def body(self, *, outputs: bool = True, response: str | None = None) -> dict[str, Any]:
        """``createExecuteJsonNode`` (with ``response``: its two-argument form;
        ``outputs=False``: ``createExecuteJsonNodeNoOutputs``)."""
        inputs: dict[str, Any] = {}
        for item in self.inputs:
            self.add_input(item, inputs)
        assert inputs, "No supported input found. Only plain string input is supported."
        body: dict[str, Any] = {"inputs": inputs}
        if outputs:
            body["outputs"] = {o.id: {"transmissionMode": "value"} for o in self.outputs}
        if response:
            body["response"] = response
        return body

    def body_with(self, kind: str) -> dict[str, Any] | None:
        """``createExecuteJsonNodeWith{BBox,Object,InputArray,BinaryInput,Href}``: the
        first input of ``kind`` gets the suite's special value; None where the suite
        throws SkipException (no such input)."""
        inputs: dict[str, Any] = {}
        found = False
        for item in self.inputs:
            if not found and self._is(kind, item):
                inputs[item.id] = self._special(kind, item)
                found = True
            else:
                self.add_input(item, inputs)
        if not found:
            return None
        if kind == "bbox":
            outputs = {o.id: {"transmissionMode": "value"} for o in self.outputs if o.bbox}
        elif kind == "array":
            arrays = [o for o in self.outputs if any(t.definition == "array" for t in o.types)]
            outputs = {o.id: {"transmissionMode": "value"} for o in arrays[:1]}
        else:
            outputs = {o.id: {"transmissionMode": "value"} for o in self.outputs}
        return {"inputs": inputs, "outputs": outputs}

    @staticmethod
    def _is(kind: str, item: Input) -> bool:
        if kind == "bbox":
            return item.bbox
        if kind in ("binary", "href"):
            return any(t.binary for t in item.types)
        return any(t.definition == kind for t in item.types)

    @staticmethod
    def _special(kind: str, item: Input) -> Any:
        tiff = next(
            (t.content_media_type for t in item.types if "tiff" in (t.content_media_type or "")),
            None,
        )
        if kind == "bbox":  # addBBoxInput
            return {
                "bbox": [51.9, 7, 52, 7.1],
                "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
            }
        if kind == "object":
            return {"value": TEST_STRING}
        if kind == "array":  # addArrayInput
            item_type = next(t.definition for t in item.types if t.definition != "array")
            return {
                "integer": [1, 2, 3],
                "double": [1.1, 2.2, 3.3],
                "string": ["test1", "test2", "test3"],
            }[item_type]
        form = {"mediaType": tiff} if tiff else {}
        if kind == "binary":  # addBinaryInput
            return {
                "value": base64.b64encode(TIFF_BYTES).decode(),
                "format": {**form, "encoding": "base64"},
            }
        raise ValueError(kind)

    def body_one_output(self, response: str) -> dict[str, Any]:
        """``createExecuteJsonNodeOneOutput`` (Jobs.java:2560): the output named as the
        first input."""
        body = self.body(outputs=False, response=response)
        first = self.inputs[0].id
        body["outputs"] = {
            o.id: {"transmissionMode": "value"} for o in self.outputs if o.id == first
        }
        return body

    def body_wrong_input(self) -> dict[str, Any] | None:
        """``createExecuteJsonNodeWithWrongInput``: every input with a contentMediaType
        gets ``{"type": "wrong/type_<uuid>"}``; None (skip) when there is none."""
        inputs: dict[str, Any] = {}
        found = False
        for item in self.inputs:
            if any(t.content_media_type for t in item.types):
                found = True
                inputs[item.id] = {"type": "wrong/type_00000000-0000-0000-0000-000000000000"}
            else:
                self.add_input(item, inputs)
        if not found:
            return None
        return {
            "inputs": inputs,
            "outputs": {o.id: {"transmissionMode": "value"} for o in self.outputs},
        }


def send_sync(url: str, body: dict[str, Any]) -> requests.Response:
    """``Jobs.createPostRequest``: Accept and Content-Type JSON, no Prefer."""
    return requests.post(url, json=body, headers={"Accept": "application/json"}, timeout=TIMEOUT_S)


def send_async(url: str, body: dict[str, Any], prefer: str = "respond-async") -> requests.Response:
    """``Jobs.sendPostRequestASync``."""
    return requests.post(
        url,
        json=body,
        headers={"Accept": "application/json", "Prefer": prefer},
        timeout=TIMEOUT_S,
    )


def multipart_contains_test_string(response: requests.Response) -> bool:
    """``Jobs.validateMultipartResponse``: one part or more, one holds ``teststring``."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + response.content)
    parts = list(message.iter_parts())
    assert parts, "Error with multipart response"
    return any(TEST_STRING in part.get_payload(decode=True).decode() for part in parts)


def loop_over_status(status: dict[str, Any]) -> str:
    """``Jobs.loopOverStatus`` (Jobs.java:2410): follow ``monitor``/``status`` links until
    a ``results`` link appears, GET it and return its body (the caller asserts it holds
    ``teststring``)."""
    deadline = time.monotonic() + POLL_DEADLINE_S
    while True:
        assert status.get("status") != "failed", f"Process failed to execute: {status}"
        rels = {link["rel"]: link["href"] for link in status.get("links", [])}
        results = rels.get("http://www.opengis.net/def/rel/ogc/1.0/results")
        if results:
            return requests.get(results, timeout=TIMEOUT_S).text
        monitor = rels.get("monitor") or rels.get("status")
        assert monitor, (
            "No result (rel='http://www.opengis.net/def/rel/ogc/1.0/results') or monitor "
            "(rel='monitor') links were found in response."
        )
        assert time.monotonic() < deadline, "Server did not return result in time."
        time.sleep(0.5)
        status = requests.get(
            monitor, headers={"Accept": "application/json"}, timeout=TIMEOUT_S
        ).json()
        validate(status, "statusInfo")
