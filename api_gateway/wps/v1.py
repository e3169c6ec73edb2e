"""WPS 1.0.0 (OGC 05-007r7): its XML requests in; Capabilities, ProcessDescriptions and
ExecuteResponse out.

What the 1.0.0 schema insists on, and this module therefore does: ``ProcessDescription``
and everything below it unqualified; ``wps:processVersion`` qualified; a LiteralData
always with AllowedValues or AnyValue; ``maxOccurs`` a number (an array input takes at
most :data:`~api_gateway.wps.datatypes.MAX_OCCURS_V1` values); ``percentCompleted`` at
most 99 while a job runs; a result ``Reference`` with a plain ``href``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from lxml import etree

from api_gateway.wps import ows
from api_gateway.wps.datatypes import (
    CRS84,
    MAX_OCCURS_V1,
    DataDescription,
    InputValue,
    OutputValue,
    describe_inputs,
    describe_outputs,
)
from api_gateway.wps.exceptions import V1, exception_report
from api_gateway.wps.request import (
    OPERATIONS,
    OutputRequest,
    WpsRequest,
    async_mode,
    boolean,
    check_document_version,
    check_language,
    check_service,
    negotiate,
    operation_name,
)
from api_gateway.wps.xmlio import OWS11, WPS1, XLINK, Xml, children, local_name, text_of
from core.exceptions import OwsException
from core.times import format_time
from ogc_prefect import JobRecord, ProcessRecord

__all__ = ["capabilities", "execute_response", "parse", "process_descriptions"]

X = Xml({"wps": WPS1, "ows": OWS11})
_SCHEMAS = "http://schemas.opengis.net/wps/1.0.0/"
_XS_TYPE = "http://www.w3.org/TR/xmlschema-2/#"

# --- requests ------------------------------------------------------------------------------


def parse(root: etree._Element) -> WpsRequest:
    """The request a WPS 1.0.0 XML document (namespace ``wps/1.0.0``) makes."""
    operation = operation_name(local_name(root))
    if operation not in OPERATIONS[V1]:
        raise OwsException(
            "OperationNotSupported", f"{operation} is not an operation of WPS 1.0.0", operation
        )
    check_service(root.get("service"))
    check_language(root.get("language"))
    if operation == "GetCapabilities":
        return WpsRequest(operation, negotiate(ows.accepted_versions(root, OWS11), None))
    check_document_version(root, operation, V1)
    identifiers = ows.identifiers(root, OWS11)
    if operation == "DescribeProcess":
        return WpsRequest(operation, V1, identifiers=identifiers)
    request = WpsRequest(operation, V1, identifiers=identifiers[:1])
    for inputs in children(root, WPS1, "DataInputs"):
        request.inputs += [_input(element) for element in children(inputs, WPS1, "Input")]
    for form in children(root, WPS1, "ResponseForm"):
        _response_form(form, request)
    return request


def _input(element: etree._Element) -> InputValue:
    name = (text_of(next(iter(children(element, OWS11, "Identifier")), None)) or "").strip()
    if not name:
        raise OwsException("MissingParameterValue", "an Input has no ows:Identifier", "Input")
    for reference in children(element, WPS1, "Reference"):
        if reference.get("method", "GET").upper() != "GET" or len(reference):
            raise OwsException(
                "InvalidParameterValue",
                f"input {name!r}: only GET references (no Body, no Header) are fetched",
                name,
            )
        href = reference.get(f"{{{XLINK}}}href") or reference.get("href")
        return InputValue(name, href=href, mime_type=reference.get("mimeType"))
    for data in children(element, WPS1, "Data"):
        for literal in children(data, WPS1, "LiteralData"):
            return InputValue(name, text=text_of(literal))
        for complex_data in children(data, WPS1, "ComplexData"):
            return InputValue(
                name,
                text=text_of(complex_data),
                mime_type=complex_data.get("mimeType"),
                xml=any(isinstance(c.tag, str) for c in complex_data),
            )
        for box in children(data, WPS1, "BoundingBoxData"):
            return InputValue(name, bbox=ows.corners(box, OWS11, name), crs=box.get("crs"))
    raise OwsException("MissingParameterValue", f"input {name!r} has no Data or Reference", name)


def _response_form(form: etree._Element, request: WpsRequest) -> None:
    for raw in children(form, WPS1, "RawDataOutput"):
        request.raw = True
        request.outputs = [_output_request(raw)]
    for document in children(form, WPS1, "ResponseDocument"):
        store = boolean(document.get("storeExecuteResponse"), "storeExecuteResponse")
        status = boolean(document.get("status"), "status")
        boolean(document.get("lineage"), "lineage")
        request.mode = async_mode(store, status)
        request.outputs = [_output_request(o) for o in children(document, WPS1, "Output")]


def _output_request(element: etree._Element) -> OutputRequest:
    name = (text_of(next(iter(children(element, OWS11, "Identifier")), None)) or "").strip()
    if not name:
        raise OwsException("MissingParameterValue", "an Output has no ows:Identifier", "Output")
    as_reference = element.get("asReference")
    return OutputRequest(
        name,
        by_reference=None if as_reference is None else boolean(as_reference, "asReference"),
        mime_type=element.get("mimeType"),
    )


# --- documents -----------------------------------------------------------------------------


def _root(tag: str, schema: str, **attrs: Any) -> etree._Element:
    return X.root(
        tag,
        {
            "service": "WPS",
            "version": V1,
            "xml:lang": "en-US",
            "xsi:schemaLocation": f"{WPS1} {_SCHEMAS}{schema}",
            **attrs,
        },
    )


def _texts(parent: etree._Element, identifier: str, title: str, abstract: str = "") -> None:
    X.add(parent, "ows:Identifier", identifier)
    X.add(parent, "ows:Title", title or identifier)
    if abstract:
        X.add(parent, "ows:Abstract", abstract)


def _version(record: ProcessRecord) -> str:
    return str(record.description.get("version") or "1.0.0")


def capabilities(url: str, site: str, records: list[ProcessRecord]) -> etree._Element:
    """GetCapabilities: the service and every process the user has."""
    root = _root("wps:Capabilities", "wpsGetCapabilities_response.xsd")
    ows.service_metadata(
        X,
        root,
        versions=(V1,),
        operations={"GetCapabilities": True, "DescribeProcess": True, "Execute": True},
        url=url,
        site=site,
    )
    offerings = X.add(root, "wps:ProcessOfferings")
    for record in records:
        process = X.add(offerings, "wps:Process", attrs={"wps:processVersion": _version(record)})
        d = record.description
        _texts(process, record.process_id, d.get("title", ""), d.get("description", ""))
    languages = X.add(root, "wps:Languages")
    X.add(X.add(languages, "wps:Default"), "ows:Language", "en-US")
    X.add(X.add(languages, "wps:Supported"), "ows:Language", "en-US")
    return root


def process_descriptions(records: list[ProcessRecord]) -> etree._Element:
    """DescribeProcess: one ``ProcessDescription`` per process."""
    root = _root("wps:ProcessDescriptions", "wpsDescribeProcess_response.xsd")
    for record in records:
        d = record.description
        process = X.add(
            root,
            "ProcessDescription",
            attrs={
                "wps:processVersion": _version(record),
                "storeSupported": True,
                "statusSupported": True,
            },
        )
        _texts(process, record.process_id, d.get("title", ""), d.get("description", ""))
        inputs = describe_inputs(d)
        if inputs:
            data_inputs = X.add(process, "DataInputs")
            for described in inputs:
                _describe_input(data_inputs, described)
        outputs = X.add(process, "ProcessOutputs")
        for described in describe_outputs(d):
            output = X.add(outputs, "Output")
            _texts(output, described.id, described.title, described.abstract)
            _describe_data(output, described, output=True)
    return root


def _describe_input(parent: etree._Element, described: DataDescription) -> None:
    max_occurs = described.max_occurs or MAX_OCCURS_V1
    element = X.add(
        parent, "Input", attrs={"minOccurs": described.min_occurs, "maxOccurs": max_occurs}
    )
    _texts(element, described.id, described.title, described.abstract)
    _describe_data(element, described, output=False)


def _describe_data(parent: etree._Element, described: DataDescription, *, output: bool) -> None:
    kind = described.kind
    if kind == "literal":
        literal = X.add(parent, "LiteralOutput" if output else "LiteralData")
        X.add(
            literal,
            "ows:DataType",
            described.data_type,
            {"ows:reference": _XS_TYPE + described.data_type},
        )
        if not output:
            ows.allowed_values(X, literal, described)
            if described.default is not None:
                X.add(literal, "DefaultValue", described.default)
    elif kind == "bbox":
        box = X.add(parent, "BoundingBoxOutput" if output else "BoundingBoxData")
        X.add(X.add(box, "Default"), "CRS", CRS84)
        X.add(X.add(box, "Supported"), "CRS", CRS84)
    else:
        formats = X.add(parent, "ComplexOutput" if output else "ComplexData")
        X.add(X.add(X.add(formats, "Default"), "Format"), "MimeType", described.media_types[0])
        supported = X.add(formats, "Supported")
        for media_type in described.media_types:
            X.add(X.add(supported, "Format"), "MimeType", media_type)


def execute_response(
    *,
    url: str,
    process_id: str,
    record: ProcessRecord | None,
    job: JobRecord,
    outputs: list[OutputValue] | None = None,
    status_location: str | None = None,
) -> etree._Element:
    """The ExecuteResponse of ``job`` as it stands: the answer to Execute and the
    document at ``status_location``. ``outputs`` are given once it succeeded."""
    root = _root(
        "wps:ExecuteResponse",
        "wpsExecute_response.xsd",
        serviceInstance=f"{url}?service=WPS&request=GetCapabilities&version={V1}",
        statusLocation=status_location,
    )
    process = X.add(
        root,
        "wps:Process",
        attrs={"wps:processVersion": _version(record) if record else "1.0.0"},
    )
    title = record.description.get("title", "") if record else ""
    _texts(process, process_id, title)
    now = format_time(dt.datetime.now(dt.UTC))
    status = X.add(root, "wps:Status", attrs={"creationTime": now})
    if job.status == "accepted":
        X.add(status, "wps:ProcessAccepted", job.message)
    elif job.status == "running":
        progress = min(max(job.progress or 0, 0), 99)  # 1.0.0: 0..99 while it runs
        X.add(status, "wps:ProcessStarted", job.message, {"percentCompleted": progress})
    elif job.status == "successful":
        X.add(status, "wps:ProcessSucceeded", job.message)
    else:
        failed = X.add(status, "wps:ProcessFailed")
        failed.append(exception_report(V1, "NoApplicableCode", job.message))
    if job.status == "successful" and outputs:
        process_outputs = X.add(root, "wps:ProcessOutputs")
        for value in outputs:
            _output(process_outputs, value)
    return root


def _output(parent: etree._Element, value: OutputValue) -> None:
    output = X.add(parent, "wps:Output")
    _texts(output, value.id, value.title)
    if value.kind == "complex":
        X.add(output, "wps:Reference", attrs={"href": value.href, "mimeType": value.mime_type})
        return
    data = X.add(output, "wps:Data")
    if value.kind == "literal":
        X.add(data, "wps:LiteralData", value.value, {"dataType": value.data_type})
    elif value.kind == "bbox":
        ows.bounding_box(X, data, "wps:BoundingBoxData", value.bbox, value.crs)
    else:
        X.add(data, "wps:ComplexData", json.dumps(value.value), {"mimeType": value.mime_type})
