"""OWS Common parts of both WPS versions, each in its own OWS namespace (1.1 or 2.0): the
service metadata of GetCapabilities, a literal's allowed values, a bounding box (written
and read)."""

from __future__ import annotations

import math

from lxml import etree

from api_gateway.wps.datatypes import DataDescription
from api_gateway.wps.xmlio import Xml, children, text_of
from core.exceptions import OwsException

__all__ = [
    "SERVICE_TITLE",
    "accepted_versions",
    "allowed_values",
    "bounding_box",
    "corners",
    "identifiers",
    "number",
    "service_metadata",
]

SERVICE_TITLE = "OGC API - Processes on Prefect (WPS)"
_ABSTRACT = (
    "The processes and jobs of the OGC API - Processes engine, as a Web Processing Service: "
    "every process is a deployed CWL application package, every job a Prefect flow run."
)


def service_metadata(
    xml: Xml,
    root: etree._Element,
    *,
    versions: tuple[str, ...],
    operations: dict[str, bool],
    url: str,
    site: str,
) -> None:
    """ServiceIdentification, ServiceProvider and OperationsMetadata of a Capabilities
    document. ``operations`` maps each operation to whether it has a KVP (GET) binding;
    every operation has the XML (POST) one at ``url``."""
    identification = xml.add(root, "ows:ServiceIdentification")
    xml.add(identification, "ows:Title", SERVICE_TITLE)
    xml.add(identification, "ows:Abstract", _ABSTRACT)
    xml.add(identification, "ows:ServiceType", "WPS")
    for version in versions:
        xml.add(identification, "ows:ServiceTypeVersion", version)
    provider = xml.add(root, "ows:ServiceProvider")
    xml.add(provider, "ows:ProviderName", "oapip-prefect")
    xml.add(provider, "ows:ProviderSite", attrs={"xlink:href": site})
    xml.add(provider, "ows:ServiceContact")
    metadata = xml.add(root, "ows:OperationsMetadata")
    for name, get in operations.items():
        http = xml.add(
            xml.add(xml.add(metadata, "ows:Operation", attrs={"name": name}), "ows:DCP"),
            "ows:HTTP",
        )
        if get:
            xml.add(http, "ows:Get", attrs={"xlink:href": f"{url}?"})
        xml.add(http, "ows:Post", attrs={"xlink:href": url})


def allowed_values(xml: Xml, parent: etree._Element, described: DataDescription) -> None:
    """``ows:AllowedValues`` (an enum, or a range) or ``ows:AnyValue``."""
    if described.allowed:
        allowed = xml.add(parent, "ows:AllowedValues")
        for value in described.allowed:
            xml.add(allowed, "ows:Value", value)
    elif described.minimum is not None or described.maximum is not None:
        value_range = xml.add(xml.add(parent, "ows:AllowedValues"), "ows:Range")
        if described.minimum is not None:
            xml.add(value_range, "ows:MinimumValue", number(described.minimum))
        if described.maximum is not None:
            xml.add(value_range, "ows:MaximumValue", number(described.maximum))
    else:
        xml.add(parent, "ows:AnyValue")


def bounding_box(xml: Xml, parent: etree._Element, tag: str, corners: list[float], crs: str):
    """A bounding box element ``tag`` (ows:BoundingBox, wps:BoundingBoxData) of
    ``corners`` (lower corner, then upper)."""
    half = len(corners) // 2
    box = xml.add(parent, tag, attrs={"crs": crs, "dimensions": half})
    xml.add(box, "ows:LowerCorner", " ".join(number(c) for c in corners[:half]))
    xml.add(box, "ows:UpperCorner", " ".join(number(c) for c in corners[half:]))
    return box


def corners(box: etree._Element, ows_ns: str, name: str) -> list[float]:
    """The coordinates of the lower, then the upper corner of an OWS bounding box (of
    input ``name``)."""
    values: list[float] = []
    for corner in ("LowerCorner", "UpperCorner"):
        text = text_of(next(iter(children(box, ows_ns, corner)), None)) or ""
        try:
            values += [float(c) for c in text.split()]
        except ValueError:
            values.append(math.nan)
        if not all(math.isfinite(v) for v in values):
            raise OwsException(
                "InvalidParameterValue", f"input {name!r}: {corner} is not numbers", name
            )
    return values


def accepted_versions(root: etree._Element, ows_ns: str) -> list[str] | None:
    """The ``ows:AcceptVersions`` of a GetCapabilities document, None without them."""
    versions = [
        text_of(version) or ""
        for accept in children(root, ows_ns, "AcceptVersions")
        for version in children(accept, ows_ns, "Version")
    ]
    return versions or None


def identifiers(root: etree._Element, ows_ns: str) -> list[str]:
    """The ``ows:Identifier``s a request names (``MissingParameterValue`` for none)."""
    found = [(text_of(i) or "").strip() for i in children(root, ows_ns, "Identifier")]
    if not any(found):
        raise OwsException(
            "MissingParameterValue", "the request names no ows:Identifier", "Identifier"
        )
    return found


def number(value: object) -> str:
    """A number as XML Schema writes it (``7`` and ``7.5``, never ``7.0``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
