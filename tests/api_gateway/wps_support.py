"""What the WPS tests share: the test process, request builders, document checks.

Requests are built with lxml (never string templates), sent with ``requests``; every
document a test reads can be handed to :func:`tests.wps_schemas.validate`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import requests
from lxml import etree

from tests.support import HTTP_TIMEOUT_S
from tests.wps_schemas import validate_if_available

WPS1 = "http://www.opengis.net/wps/1.0.0"
OWS11 = "http://www.opengis.net/ows/1.1"
WPS2 = "http://www.opengis.net/wps/2.0"
OWS2 = "http://www.opengis.net/ows/2.0"
XLINK = "http://www.w3.org/1999/xlink"
NS = {"wps": WPS1, "ows": OWS11, "wps2": WPS2, "ows2": OWS2, "xlink": XLINK}
V1, V2 = "1.0.0", "2.0.0"
SYNC_TIMEOUT_S = 120.0

# Every kind of WPS data in one tool that runs on the host: literals (string, int with a
# default, an enum), a bounding box (a CWL record {bbox, crs}), a File, a string array;
# a literal output read from the tool's stdout and the same stdout as a File.
WPS_ECHO_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: wps-echo
label: WPS echo
doc: Echoes its inputs.
$namespaces:
  iana: https://www.iana.org/assignments/media-types/
requirements:
  SchemaDefRequirement:
    types:
    - name: "#BBox"
      type: record
      fields:
        bbox:
          type: {type: array, items: double}
          inputBinding: {position: 1, itemSeparator: ","}
        crs:
          type: string
          inputBinding: {position: 2}
baseCommand: echo
inputs:
  message:
    type: string
    label: the message
    inputBinding: {position: 1}
  times:
    type: int
    default: 1
    inputBinding: {position: 2, prefix: "x"}
  mode:
    type: {type: enum, symbols: [loud, quiet]}
    default: quiet
    inputBinding: {position: 3}
  aoi:
    type: ["null", "#BBox"]
    label: area of interest
    inputBinding: {position: 4, prefix: "aoi"}
  infile:
    type: File?
    inputBinding: {position: 5, prefix: "file", valueFrom: $(self.basename)}
  tags:
    type: string[]?
    inputBinding: {position: 6, prefix: "tags"}
outputs:
  said:
    type: string
    outputBinding:
      glob: said.txt
      loadContents: true
      outputEval: $(self[0].contents)
  report:
    type: File
    format: iana:text/plain
    outputBinding: {glob: said.txt}
stdout: said.txt
"""


def wps_get(url: str, **params: str) -> requests.Response:
    return requests.get(url, params=params, timeout=SYNC_TIMEOUT_S, allow_redirects=False)


def wps_post(url: str, body: bytes | etree._Element) -> requests.Response:
    if isinstance(body, etree._Element):
        body = etree.tostring(body, xml_declaration=True, encoding="UTF-8")
    return requests.post(
        url,
        data=body,
        headers={"Content-Type": "text/xml"},
        # A synchronous Execute waits for its job: the session's first job warms the worker.
        timeout=SYNC_TIMEOUT_S,
        allow_redirects=False,
    )


def document(response: requests.Response, version: str, status: int = 200) -> etree._Element:
    """The XML document of ``response`` (checked: status, ``text/xml``, the schema when it
    is to be had)."""
    assert response.status_code == status, (response.status_code, response.text[:2000])
    assert response.headers["content-type"].split(";")[0] == "text/xml", response.headers
    validate_if_available(response.content, version)
    return etree.fromstring(response.content)


def report(
    response: requests.Response, status: int, code: str, version: str = V1
) -> dict[str, Any]:
    """Check an ExceptionReport answer; its code, locator and text."""
    root = document(response, version, status)
    ows = OWS2 if version == V2 else OWS11
    assert root.tag == f"{{{ows}}}ExceptionReport", response.text
    exception = root.find(f"{{{ows}}}Exception")
    found = {
        "code": exception.get("exceptionCode"),
        "locator": exception.get("locator"),
        "text": exception.findtext(f"{{{ows}}}ExceptionText"),
    }
    assert found["code"] == code, (found, response.text)
    return found


def _element(tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    namespace, _, local = tag.partition(":")
    element = etree.Element(f"{{{NS[namespace]}}}{local}")
    for key, value in attrs.items():
        prefix, _, name = key.partition("__")
        element.set(f"{{{NS[prefix]}}}{name}" if name else prefix, value)
    if text is not None:
        element.text = text
    return element


def _add(parent: etree._Element, tag: str, text: str | None = None, **attrs: str):
    child = _element(tag, text, **attrs)
    parent.append(child)
    return child


# An input: (id, "literal" | "complex" | "reference" | "bbox", value); a bbox value is
# (lower corner, upper corner, crs).
Input = tuple[str, str, Any]


def execute_v1(
    identifier: str,
    inputs: Iterable[Input],
    *,
    store: bool = False,
    outputs: Iterable[tuple[str, bool]] = (),
    raw: str | None = None,
) -> etree._Element:
    """A WPS 1.0.0 wps:Execute document."""
    root = _element("wps:Execute", service="WPS", version=V1)
    _add(root, "ows:Identifier", identifier)
    data_inputs = _add(root, "wps:DataInputs")
    for name, kind, value in inputs:
        item = _add(data_inputs, "wps:Input")
        _add(item, "ows:Identifier", name)
        if kind == "reference":
            _add(item, "wps:Reference", xlink__href=value, mimeType="text/plain")
            continue
        data = _add(item, "wps:Data")
        if kind == "bbox":
            box = _add(data, "wps:BoundingBoxData", crs=value[2], dimensions="2")
            _add(box, "ows:LowerCorner", value[0])
            _add(box, "ows:UpperCorner", value[1])
        elif kind == "complex":
            _add(data, "wps:ComplexData", value, mimeType="application/json")
        else:
            _add(data, "wps:LiteralData", value)
    form = _add(root, "wps:ResponseForm")
    if raw:
        _add(_add(form, "wps:RawDataOutput"), "ows:Identifier", raw)
        return root
    flag = "true" if store else "false"
    response_document = _add(form, "wps:ResponseDocument", storeExecuteResponse=flag, status=flag)
    for name, as_reference in outputs:
        output = _add(
            response_document, "wps:Output", asReference="true" if as_reference else "false"
        )
        _add(output, "ows:Identifier", name)
    return root


def execute_v2(
    identifier: str,
    inputs: Iterable[Input],
    *,
    mode: str = "sync",
    response: str = "document",
    outputs: Iterable[tuple[str, str]] = (),
) -> etree._Element:
    """A WPS 2.0 wps:Execute document; ``outputs`` are (id, transmission)."""
    root = _element("wps2:Execute", service="WPS", version=V2, mode=mode, response=response)
    _add(root, "ows2:Identifier", identifier)
    for name, kind, value in inputs:
        item = _add(root, "wps2:Input", id=name)
        if kind == "reference":
            _add(item, "wps2:Reference", xlink__href=value, mimeType="text/plain")
        elif kind == "bbox":
            box = _add(_add(item, "wps2:Data"), "ows2:BoundingBox", crs=value[2])
            _add(box, "ows2:LowerCorner", value[0])
            _add(box, "ows2:UpperCorner", value[1])
        elif kind == "complex":
            _add(item, "wps2:Data", value, mimeType="application/json")
        else:
            _add(_add(item, "wps2:Data"), "wps2:LiteralValue", value)
    for name, transmission in outputs:
        _add(root, "wps2:Output", id=name, transmission=transmission)
    return root


def job_request_v2(operation: str, job_id: str) -> etree._Element:
    """A WPS 2.0 GetStatus, GetResult or Dismiss document."""
    root = _element(f"wps2:{operation}", service="WPS", version=V2)
    _add(root, "wps2:JobID", job_id)
    return root


def status_of_v1(root: etree._Element) -> str:
    """The status element's name of an ExecuteResponse (ProcessSucceeded, ...)."""
    status = root.find("wps:Status", NS)
    return etree.QName(status[0]).localname


def poll_v1(status_location: str, timeout: float = 60) -> list[etree._Element]:
    """Every ExecuteResponse read at ``status_location`` until the job ends."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        root = document(requests.get(status_location, timeout=HTTP_TIMEOUT_S), V1)
        seen.append(root)
        if status_of_v1(root) in ("ProcessSucceeded", "ProcessFailed"):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{status_location} did not end within {timeout} s")


def poll_v2(url: str, job_id: str, timeout: float = 60) -> etree._Element:
    """GetStatus (KVP) until the job ends; its last StatusInfo."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = wps_get(url, service="WPS", version=V2, request="GetStatus", jobId=job_id)
        root = document(response, V2)
        if root.findtext("wps2:Status", namespaces=NS) in ("Succeeded", "Failed", "Dismissed"):
            return root
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end within {timeout} s")


def outputs_v1(root: etree._Element) -> dict[str, etree._Element]:
    """ExecuteResponse outputs by identifier: the Reference or Data element."""
    return {
        output.findtext("ows:Identifier", namespaces=NS): output[-1]
        for output in root.iterfind("wps:ProcessOutputs/wps:Output", NS)
    }
