"""WPS 2.0 (OGC 14-065): its XML requests in; Capabilities, ProcessOfferings, StatusInfo
and Result out.

The 2.0 schema's own demands: descriptions put ``ows:Title`` before ``ows:Identifier``;
every data description has at least one ``wps:Format``; ``LiteralDataDomain`` is
unqualified; ``maxOccurs`` may be ``unbounded``; result references use ``xlink:href``.
"""

from __future__ import annotations

import json

from lxml import etree

from api_gateway.wps import ows
from api_gateway.wps.datatypes import (
    CRS84,
    JSON,
    DataDescription,
    InputValue,
    OutputValue,
    describe_inputs,
    describe_outputs,
)
from api_gateway.wps.exceptions import V1, V2
from api_gateway.wps.request import (
    OPERATIONS,
    OutputRequest,
    WpsRequest,
    check_document_version,
    check_service,
    negotiate,
    operation_name,
)
from api_gateway.wps.xmlio import OWS2, WPS2, XLINK, Xml, children, local_name, text_of
from core.exceptions import OwsException
from ogc_prefect import JobRecord, ProcessRecord

__all__ = ["JOB_CONTROL", "capabilities", "parse", "process_offerings", "result", "status_info"]

X = Xml({"wps": WPS2, "ows": OWS2})
_SCHEMA_LOCATION = f"{WPS2} http://schemas.opengis.net/wps/2.0/wps.xsd"
_XS_TYPE = "http://www.w3.org/2001/XMLSchema#"
JOB_CONTROL = "sync-execute async-execute dismiss"
_TRANSMISSION = "value reference"
_STATUS = {
    "accepted": "Accepted",
    "running": "Running",
    "successful": "Succeeded",
    "failed": "Failed",
    "dismissed": "Dismissed",
}
_MODES = ("sync", "async", "auto")
_RESPONSES = ("document", "raw")

# --- requests ------------------------------------------------------------------------------


def parse(root: etree._Element) -> WpsRequest:
    """The request a WPS 2.0 XML document (namespace ``wps/2.0``) makes."""
    operation = operation_name(local_name(root))
    check_service(root.get("service"))
    if operation == "GetCapabilities":
        return WpsRequest(operation, negotiate(ows.accepted_versions(root, OWS2), None))
    check_document_version(root, operation, V2)
    if operation in OPERATIONS[V2][3:]:  # GetStatus, GetResult, Dismiss
        job_id = (text_of(next(iter(children(root, WPS2, "JobID")), None)) or "").strip()
        if not job_id:
            raise OwsException("MissingParameterValue", "the request has no wps:JobID", "JobID")
        return WpsRequest(operation, V2, job_id=job_id)
    identifiers = ows.identifiers(root, OWS2)
    if operation == "DescribeProcess":
        return WpsRequest(operation, V2, identifiers=identifiers)
    mode, response = root.get("mode", "auto"), root.get("response", "document")
    if mode not in _MODES:
        raise OwsException("InvalidParameterValue", f"mode must be one of {_MODES}", "mode")
    if response not in _RESPONSES:
        raise OwsException(
            "InvalidParameterValue", f"response must be one of {_RESPONSES}", "response"
        )
    return WpsRequest(
        operation,
        V2,
        identifiers=identifiers[:1],
        inputs=[_input(element) for element in children(root, WPS2, "Input")],
        outputs=[_output_request(element) for element in children(root, WPS2, "Output")],
        mode=mode,
        raw=response == "raw",
    )


def _input(element: etree._Element) -> InputValue:
    name = (element.get("id") or "").strip()
    if not name:
        raise OwsException("MissingParameterValue", "a wps:Input has no id", "Input")
    if children(element, WPS2, "Input"):
        raise OwsException(
            "InvalidParameterValue", f"input {name!r}: nested inputs are not offered", name
        )
    for reference in children(element, WPS2, "Reference"):
        if len(reference):
            raise OwsException(
                "InvalidParameterValue",
                f"input {name!r}: only GET references (no Body) are fetched",
                name,
            )
        href = reference.get(f"{{{XLINK}}}href")
        return InputValue(name, href=href, mime_type=reference.get("mimeType"))
    for data in children(element, WPS2, "Data"):
        content = [c for c in data if isinstance(c.tag, str)]
        if not content:
            return InputValue(name, text=data.text or "", mime_type=data.get("mimeType"))
        if len(content) == 1 and content[0].tag == f"{{{WPS2}}}LiteralValue":
            return InputValue(name, text=text_of(content[0]))
        if len(content) == 1 and content[0].tag == f"{{{OWS2}}}BoundingBox":
            box = content[0]
            return InputValue(name, bbox=ows.corners(box, OWS2, name), crs=box.get("crs"))
        return InputValue(name, text=text_of(data), mime_type=data.get("mimeType"), xml=True)
    raise OwsException("MissingParameterValue", f"input {name!r} has no Data or Reference", name)


def _output_request(element: etree._Element) -> OutputRequest:
    name = (element.get("id") or "").strip()
    if not name:
        raise OwsException("MissingParameterValue", "a wps:Output has no id", "Output")
    transmission = element.get("transmission")
    return OutputRequest(
        name,
        by_reference=None if transmission is None else transmission == "reference",
        mime_type=element.get("mimeType"),
    )


# --- documents -----------------------------------------------------------------------------


def _root(tag: str, **attrs: object) -> etree._Element:
    return X.root(tag, {"xsi:schemaLocation": _SCHEMA_LOCATION, **attrs})


def _texts(parent: etree._Element, identifier: str, title: str, abstract: str = "") -> None:
    X.add(parent, "ows:Title", title or identifier)
    if abstract:
        X.add(parent, "ows:Abstract", abstract)
    X.add(parent, "ows:Identifier", identifier)


def _offering_attrs(record: ProcessRecord) -> dict[str, str]:
    return {
        "jobControlOptions": JOB_CONTROL,
        "outputTransmission": _TRANSMISSION,
        "processVersion": str(record.description.get("version") or "1.0.0"),
    }


def capabilities(url: str, site: str, records: list[ProcessRecord]) -> etree._Element:
    """GetCapabilities: the service and every process the user has."""
    root = _root("wps:Capabilities", service="WPS", version=V2)
    operations = dict.fromkeys(OPERATIONS[V2], True)
    operations["Execute"] = False  # 2.0 has no KVP Execute
    ows.service_metadata(X, root, versions=(V1, V2), operations=operations, url=url, site=site)
    contents = X.add(root, "wps:Contents")
    for record in records:
        summary = X.add(contents, "wps:ProcessSummary", attrs=_offering_attrs(record))
        d = record.description
        _texts(summary, record.process_id, d.get("title", ""), d.get("description", ""))
    return root


def process_offerings(records: list[ProcessRecord]) -> etree._Element:
    """DescribeProcess: one ``wps:ProcessOffering`` per process."""
    root = _root("wps:ProcessOfferings")
    for record in records:
        d = record.description
        offering = X.add(root, "wps:ProcessOffering", attrs=_offering_attrs(record))
        process = X.add(offering, "wps:Process", attrs={"xml:lang": "en"})
        _texts(process, record.process_id, d.get("title", ""), d.get("description", ""))
        for described in describe_inputs(d):
            max_occurs = described.max_occurs or "unbounded"
            element = X.add(
                process,
                "wps:Input",
                attrs={"minOccurs": described.min_occurs, "maxOccurs": max_occurs},
            )
            _texts(element, described.id, described.title, described.abstract)
            _describe_data(element, described)
        for described in describe_outputs(d):
            element = X.add(process, "wps:Output")
            _texts(element, described.id, described.title, described.abstract)
            _describe_data(element, described)
    return root


def _describe_data(parent: etree._Element, described: DataDescription) -> None:
    if described.kind == "literal":
        literal = X.add(parent, "wps:LiteralData")
        X.add(literal, "wps:Format", attrs={"mimeType": "text/plain", "default": True})
        domain = X.add(literal, "LiteralDataDomain", attrs={"default": True})
        ows.allowed_values(X, domain, described)
        X.add(
            domain,
            "ows:DataType",
            described.data_type,
            {"ows:reference": _XS_TYPE + described.data_type},
        )
        if described.default is not None:
            X.add(domain, "ows:DefaultValue", described.default)
    elif described.kind == "bbox":
        box = X.add(parent, "wps:BoundingBoxData")
        X.add(box, "wps:Format", attrs={"mimeType": "text/xml", "default": True})
        X.add(box, "wps:SupportedCRS", CRS84, {"default": True})
    else:
        data = X.add(parent, "wps:ComplexData")
        for index, media_type in enumerate(described.media_types):
            X.add(data, "wps:Format", attrs={"mimeType": media_type, "default": index == 0})


def status_info(job: JobRecord, *, status: str | None = None) -> etree._Element:
    """GetStatus, Dismiss and an asynchronous Execute: the job as it stands."""
    root = _root("wps:StatusInfo")
    X.add(root, "wps:JobID", job.job_id)
    X.add(root, "wps:Status", status or _STATUS[job.status])
    if job.status == "running" and job.progress is not None:
        X.add(root, "wps:PercentCompleted", min(max(job.progress, 0), 100))
    return root


def result(job_id: str, outputs: list[OutputValue]) -> etree._Element:
    """GetResult and a synchronous Execute: the outputs of a job that succeeded."""
    root = _root("wps:Result")
    X.add(root, "wps:JobID", job_id)
    for value in outputs:
        output = X.add(root, "wps:Output", attrs={"id": value.id})
        if value.kind == "complex":
            X.add(
                output,
                "wps:Reference",
                attrs={"xlink:href": value.href, "mimeType": value.mime_type},
            )
        elif value.kind == "literal":
            data = X.add(output, "wps:Data", attrs={"mimeType": "text/plain"})
            X.add(data, "wps:LiteralValue", value.value, {"dataType": _XS_TYPE + value.data_type})
        elif value.kind == "bbox":
            data = X.add(output, "wps:Data", attrs={"mimeType": "text/xml"})
            ows.bounding_box(X, data, "ows:BoundingBox", value.bbox, value.crs)
        else:
            X.add(output, "wps:Data", json.dumps(value.value), {"mimeType": JSON})
    return root
