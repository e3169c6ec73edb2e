"""A WPS request, whatever its version and encoding, and the KVP (GET) encoding of it.

:class:`WpsRequest` is what every operation works from; :func:`from_kvp` reads a query
string (WPS 1.0.0 GetCapabilities, DescribeProcess, Execute; WPS 2.0 GetCapabilities,
DescribeProcess, GetStatus, GetResult, Dismiss — 2.0 has no KVP Execute), and
``v1.parse``/``v2.parse`` read XML bodies. Parameter names are case-insensitive, as the
OGC test suites send them both ways.

Version negotiation (OWS Common): GetCapabilities answers the first version of
``AcceptVersions`` this service has (none: ``VersionNegotiationFailed``), else its
``version`` if given, else 1.0.0 — what OWSLib and most old clients expect. Every other
operation names its version (1.0.0 or 2.0.0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from lxml import etree

from api_gateway.wps.datatypes import InputValue
from api_gateway.wps.exceptions import V1, V2
from core.exceptions import OwsException

__all__ = [
    "OPERATIONS",
    "VERSIONS",
    "OutputRequest",
    "WpsRequest",
    "async_mode",
    "boolean",
    "check_document_version",
    "check_language",
    "check_service",
    "check_version",
    "from_kvp",
    "negotiate",
    "operation_name",
]

VERSIONS = (V1, V2)
OPERATIONS = {
    V1: ("GetCapabilities", "DescribeProcess", "Execute"),
    V2: ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss"),
}
_LANGUAGES = ("en-us", "en")


@dataclass
class OutputRequest:
    """An output the client asked for: by reference or by value, in a media type."""

    id: str
    by_reference: bool | None = None
    mime_type: str | None = None


@dataclass
class WpsRequest:
    """One WPS request: the operation, its version and what it names."""

    operation: str
    version: str
    identifiers: list[str] = field(default_factory=list)
    inputs: list[InputValue] = field(default_factory=list)
    outputs: list[OutputRequest] = field(default_factory=list)
    mode: str = "sync"  # sync, async (1.0.0: storeExecuteResponse) or auto
    raw: bool = False  # RawDataOutput (1.0.0), response=raw (2.0)
    job_id: str | None = None


def operation_name(name: str | None) -> str:
    """The operation ``name`` names (case-insensitive); ``OperationNotSupported`` for
    any other."""
    if not name:
        raise OwsException("MissingParameterValue", "the parameter `request` is missing", "request")
    for known in OPERATIONS[V2]:
        if known.lower() == name.strip().lower():
            return known
    raise OwsException(
        "OperationNotSupported",
        f"operation {name[:100]!r} is not offered; this WPS offers " + ", ".join(OPERATIONS[V2]),
        name[:100],
    )


def check_service(service: str | None) -> None:
    """``service`` must be WPS."""
    if service is None:
        raise OwsException("MissingParameterValue", "the parameter `service` is missing", "service")
    if service.strip().upper() != "WPS":
        raise OwsException(
            "InvalidParameterValue", f"service {service[:100]!r} is not WPS", "service"
        )


def check_version(version: str | None, operation: str) -> str:
    """The version of a request other than GetCapabilities, which must name one."""
    if not version:
        raise OwsException("MissingParameterValue", "the parameter `version` is missing", "version")
    version = version.strip()
    if version not in VERSIONS:
        raise OwsException(
            "VersionNegotiationFailed",
            f"version {version[:20]!r} is not supported; this WPS speaks 1.0.0 and 2.0.0",
            "version",
        )
    if operation not in OPERATIONS[version]:
        raise OwsException(
            "OperationNotSupported",
            f"{operation} is not an operation of WPS {version}",
            operation,
        )
    return version


def check_document_version(root: etree._Element, operation: str, version: str) -> None:
    """An XML request's ``version`` attribute must name the version of its namespace."""
    if check_version(root.get("version"), operation) != version:
        raise OwsException(
            "VersionNegotiationFailed",
            f"a WPS {version} document must say version {version}",
            "version",
        )


def negotiate(accept_versions: list[str] | None, version: str | None) -> str:
    """The version a GetCapabilities answers (see the module docstring)."""
    if accept_versions:
        for asked in accept_versions:
            if asked.strip() in VERSIONS:
                return asked.strip()
        raise OwsException(
            "VersionNegotiationFailed",
            "none of AcceptVersions is supported; this WPS speaks 1.0.0 and 2.0.0",
            "AcceptVersions",
        )
    if version:
        return check_version(version, "GetCapabilities")
    return V1


def check_language(language: str | None) -> None:
    if language and language.strip().lower() not in _LANGUAGES:
        raise OwsException(
            "InvalidParameterValue",
            f"language {language[:20]!r} is not offered: use en-US",
            "language",
        )


def boolean(value: str | None, name: str) -> bool:
    """A WPS boolean parameter (true/false, any case); absent is false."""
    if value is None or value.strip().lower() == "false":
        return False
    if value.strip().lower() == "true":
        return True
    raise OwsException("InvalidParameterValue", f"{name} must be true or false", name)


# --- KVP -----------------------------------------------------------------------------------


def _pairs(query: str) -> dict[str, str]:
    """Parameter name (lower case) -> raw (still percent-encoded) value; the first wins."""
    pairs: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.setdefault(unquote_plus(key).strip().lower(), value)
    return pairs


def from_kvp(query: str) -> WpsRequest:
    """The request a query string encodes.

    ``query`` is the raw query: ``DataInputs`` is split on its ``;`` and ``@`` before its
    values are decoded, so an encoded ``%3B`` stays in a value (OGC 05-007r7, 10.2.2.1);
    a ``DataInputs`` encoded whole, separators too, is decoded once first.
    """
    raw = _pairs(query)
    params = {k: unquote_plus(v) for k, v in raw.items()}
    check_service(params.get("service"))
    operation = operation_name(params.get("request"))
    check_language(params.get("language"))
    if operation == "GetCapabilities":
        accept = params.get("acceptversions")
        versions = [v for v in accept.split(",") if v.strip()] if accept else None
        return WpsRequest(operation, negotiate(versions, params.get("version")))
    version = check_version(params.get("version"), operation)
    if operation == "DescribeProcess":
        return WpsRequest(operation, version, identifiers=_identifiers(params))
    if operation == "Execute":
        if version == V2:
            raise OwsException(
                "OperationNotSupported",
                "WPS 2.0 has no KVP Execute: POST a wps:Execute document",
                "Execute",
            )
        return _execute_v1(params, raw)
    job_id = params.get("jobid")
    if not job_id:
        raise OwsException("MissingParameterValue", "the parameter `JobID` is missing", "JobID")
    return WpsRequest(operation, version, job_id=job_id.strip())


def _identifiers(params: dict[str, str]) -> list[str]:
    identifiers = [i.strip() for i in params.get("identifier", "").split(",") if i.strip()]
    if not identifiers:
        raise OwsException(
            "MissingParameterValue", "the parameter `identifier` is missing", "identifier"
        )
    return identifiers


def _execute_v1(params: dict[str, str], raw: dict[str, str]) -> WpsRequest:
    identifiers = _identifiers(params)
    if len(identifiers) > 1:
        raise OwsException("InvalidParameterValue", "Execute runs one process", "identifier")
    request = WpsRequest("Execute", V1, identifiers=identifiers)
    data_inputs = raw.get("datainputs", "")
    if "=" not in data_inputs:
        # Encoded whole, separators too (what a generic URL encoder does): decode it once.
        data_inputs = unquote_plus(data_inputs)
    request.inputs = [_kvp_input(item) for item in _items(data_inputs)]
    store = boolean(params.get("storeexecuteresponse"), "storeExecuteResponse")
    status = boolean(params.get("status"), "status")
    boolean(params.get("lineage"), "lineage")
    if "rawdataoutput" in raw:
        outputs = [_kvp_output(item) for item in _items(params["rawdataoutput"])]
        if len(outputs) != 1 or store or "responsedocument" in raw:
            raise OwsException(
                "InvalidParameterValue",
                "RawDataOutput names one output and is answered synchronously",
                "RawDataOutput",
            )
        request.outputs, request.raw = outputs, True
        return request
    # Output ids and media types hold no `;` or `@`: decoded at once, however encoded.
    request.outputs = [_kvp_output(item) for item in _items(params.get("responsedocument"))]
    request.mode = async_mode(store, status)
    return request


def async_mode(store: bool, status: bool) -> str:
    """WPS 1.0.0: storeExecuteResponse makes an execution asynchronous; status alone is
    an error (OGC 05-007r7, 10.2.2)."""
    if status and not store:
        raise OwsException(
            "InvalidParameterValue", "status=true needs storeExecuteResponse=true", "status"
        )
    return "async" if store else "sync"


def _items(value: str | None) -> list[list[str]]:
    """``a=1@x=y;b=2`` -> ``[["a=1", "x=y"], ["b=2"]]``, each part decoded."""
    if not value:
        return []
    return [[unquote_plus(part) for part in item.split("@")] for item in value.split(";") if item]


def _attributes(parts: list[str]) -> dict[str, str]:
    attributes = {}
    for part in parts:
        key, _, value = part.partition("=")
        attributes[key.strip().lower().removeprefix("xlink:")] = value
    return attributes


def _kvp_input(parts: list[str]) -> InputValue:
    name, equals, value = parts[0].partition("=")
    if not name.strip() or not equals:
        raise OwsException(
            "InvalidParameterValue",
            f"DataInputs item {parts[0][:100]!r} is not id=value",
            "DataInputs",
        )
    attributes = _attributes(parts[1:])
    return InputValue(
        id=name.strip(),
        text=None if "href" in attributes else value,
        href=attributes.get("href"),
        mime_type=attributes.get("mimetype") or attributes.get("format"),
        crs=attributes.get("crs"),
    )


def _kvp_output(parts: list[str]) -> OutputRequest:
    attributes = _attributes(parts[1:])
    as_reference = attributes.get("asreference")
    return OutputRequest(
        id=parts[0].strip(),
        by_reference=None if as_reference is None else boolean(as_reference, "asReference"),
        mime_type=attributes.get("mimetype"),
    )
