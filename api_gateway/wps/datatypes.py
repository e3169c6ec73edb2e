"""WPS data descriptions and values, read from a process's OGC description.

The WPS describes exactly what the OGC API describes (``record.description``, made from
the CWL by :mod:`cwlpkg.describe`), in WPS terms:

============================================  ==================================================
OGC schema of the input or output             WPS
============================================  ==================================================
``string``/``integer``/``number``/``boolean``  LiteralData, ``ows:DataType`` string, integer,
(``format`` date-time, date, uri, float...)    double (float), boolean, dateTime, date, anyURI
``enum``                                       LiteralData with ``ows:AllowedValues``
``minimum``/``maximum``                        LiteralData with an ``ows:Range``
``default``                                    ``DefaultValue``, ``minOccurs`` 0
File/Directory (a URL or ``{"href": …}``)      ComplexData given by reference; the media type is
                                               the CWL format's (``contentMediaType``), else
                                               ``application/octet-stream``
object with ``bbox`` (and ``crs``), or         BoundingBoxData: the OGC bbox value
``format: ogc-bbox`` (a CWL record             ``{"bbox": [lower…, upper…], "crs": …}``
``{bbox: float[], crs: string}``)
any other object, union or ``Any``             ComplexData ``application/json``, by value
``array`` of T                                 T with ``maxOccurs`` > 1: each occurrence one item
============================================  ==================================================
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from core.exceptions import OwsException

__all__ = [
    "CRS84",
    "DataDescription",
    "Kind",
    "MAX_OCCURS_V1",
    "OutputValue",
    "describe_inputs",
    "describe_outputs",
    "guess_outputs",
    "output_values",
    "to_ogc_input",
    "InputValue",
    "JSON",
]

Kind = Literal["literal", "complex", "json", "bbox"]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
MAX_OCCURS_V1 = 999  # WPS 1.0.0 wants a number: what an array input takes at most
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
DIRECTORY = "application/x-directory"

_FORMATS = {"date-time": "dateTime", "date": "date", "time": "time", "uri": "anyURI"}


@dataclass(frozen=True)
class DataDescription:
    """One input or output of a process, as the WPS describes it."""

    id: str
    title: str
    abstract: str
    kind: Kind
    schema: dict[str, Any]  # the OGC schema of one occurrence
    data_type: str = "string"  # literal: the XML Schema type name
    allowed: tuple[str, ...] = ()  # literal: the enum
    minimum: Any = None
    maximum: Any = None
    default: Any = None
    media_types: tuple[str, ...] = (JSON,)  # complex: the default first
    min_occurs: int = 1
    max_occurs: int | None = 1  # None: unbounded
    array: bool = False


@dataclass
class InputValue:
    """One occurrence of an input in an Execute request, as the client wrote it."""

    id: str
    text: str | None = None  # a literal, or inline complex content as text
    href: str | None = None  # given by reference
    mime_type: str | None = None
    bbox: list[float] | None = None  # lower corner then upper corner
    crs: str | None = None
    xml: bool = False  # inline complex content was XML elements


@dataclass
class OutputValue:
    """One occurrence of an output in a result: a literal, a reference, JSON or a bbox."""

    id: str
    title: str
    kind: Kind
    value: Any = None  # literal or JSON value
    href: str | None = None
    mime_type: str | None = None
    data_type: str = "string"
    bbox: list[float] = field(default_factory=list)
    crs: str = CRS84


def describe_inputs(description: dict[str, Any]) -> list[DataDescription]:
    """The process's inputs in WPS terms (see the module docstring)."""
    return [
        _describe(name, spec, output=False)
        for name, spec in (description.get("inputs") or {}).items()
    ]


def describe_outputs(description: dict[str, Any]) -> list[DataDescription]:
    """The process's outputs in WPS terms."""
    return [
        _describe(name, spec, output=True)
        for name, spec in (description.get("outputs") or {}).items()
    ]


def _describe(name: str, spec: dict[str, Any], *, output: bool) -> DataDescription:
    schema = spec.get("schema") or {}
    array = schema.get("type") == "array"
    item = (schema.get("items") or {}) if array else schema
    kind = _kind(item, output=output)
    min_occurs = int(spec.get("minOccurs", 1))  # 0 for optional inputs and defaults
    max_occurs = spec.get("maxOccurs", 1)
    common: dict[str, Any] = {
        "id": name,
        "title": spec.get("title") or name,
        "abstract": spec.get("description") or "",
        "kind": kind,
        "schema": item,
        "min_occurs": min_occurs,
        "max_occurs": None if array or max_occurs == "unbounded" else int(max_occurs),
        "array": array,
    }
    if kind == "literal":
        allowed = tuple(str(v) for v in item.get("enum") or ())
        default = schema.get("default")
        return DataDescription(
            **common,
            data_type=_data_type(item),
            allowed=allowed,
            minimum=item.get("minimum"),
            maximum=item.get("maximum"),
            default=None if array else default,
        )
    if kind == "complex":
        media_type = _media_type(item)
        return DataDescription(**common, media_types=(media_type or OCTET_STREAM,))
    return DataDescription(**common)


def _kind(schema: dict[str, Any], *, output: bool) -> Kind:
    if _is_bbox(schema):
        return "bbox"
    if _is_file(schema, output=output):
        return "complex"
    if schema.get("type") in ("string", "integer", "number", "boolean"):
        return "literal"
    return "json"


def _is_bbox(schema: dict[str, Any]) -> bool:
    if schema.get("format") == "ogc-bbox":
        return True
    properties = schema.get("properties") or {}
    return (
        schema.get("type") == "object"
        and (properties.get("bbox") or {}).get("type") == "array"
        and set(properties) <= {"bbox", "crs"}
    )


def _is_file(schema: dict[str, Any], *, output: bool) -> bool:
    """A CWL File/Directory: an input takes a URL or ``{"href"}``, an output is a URL."""
    branches = schema.get("oneOf") or []
    if any(b.get("type") == "string" and b.get("format") == "uri" for b in branches):
        return True
    return output and schema.get("type") == "string" and schema.get("format") == "uri"


def _media_type(schema: dict[str, Any]) -> str | None:
    for part in [schema, *(schema.get("oneOf") or [])]:
        if isinstance(part.get("contentMediaType"), str):
            return part["contentMediaType"]
    return None


def _data_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "integer":
        return "integer"
    if kind == "number":
        return "float" if schema.get("format") == "float" else "double"
    if kind == "boolean":
        return "boolean"
    return _FORMATS.get(schema.get("format", ""), "string")


# --- Execute: WPS input values -> the OGC execute request's inputs -------------------------


def to_ogc_input(described: DataDescription, given: list[InputValue], *, version: str) -> Any:
    """The OGC value of ``described`` from its occurrences ``given`` (a list for arrays).

    ``OwsException`` when a value cannot be one of this input: too many occurrences, a
    literal that is not of its type, a file given by value, JSON that does not parse.
    """
    if not described.array and len(given) > 1:
        code = "TooManyInputs" if version == "2.0.0" else "InvalidParameterValue"
        raise OwsException(code, f"input {described.id!r} takes one value", described.id)
    values = [_value(described, occurrence) for occurrence in given]
    return values if described.array else values[0]


def _value(described: DataDescription, given: InputValue) -> Any:
    name = described.id
    if described.kind == "complex":
        href = given.href or (given.text or "").strip()
        if given.href is None and ("://" not in href or given.xml):
            raise OwsException(
                "InvalidParameterValue",
                f"input {name!r} is a file: give it by reference (an http(s) or s3 URL)",
                name,
            )
        return {"href": href, "type": given.mime_type} if given.mime_type else href
    if given.href is not None:
        raise OwsException(
            "InvalidParameterValue", f"input {name!r} takes a value, not a reference", name
        )
    if described.kind == "bbox":
        return _bbox_value(described, given)
    if given.xml:
        raise OwsException(
            "InvalidParameterValue", f"input {name!r} takes text or JSON, not XML", name
        )
    text = given.text or ""
    if described.kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text  # an `Any` input takes a plain string too; the OGC check decides
    return _literal(described, text.strip() if described.data_type != "string" else text)


def _literal(described: DataDescription, text: str) -> Any:
    try:
        if described.data_type == "integer":
            return int(text)
        if described.data_type in ("double", "float"):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
    except ValueError:
        raise OwsException(
            "InvalidParameterValue",
            f"input {described.id!r} takes a {described.data_type}, not {text[:100]!r}",
            described.id,
        ) from None
    if described.data_type == "boolean":
        if text.lower() not in ("true", "false", "1", "0"):
            raise OwsException(
                "InvalidParameterValue",
                f"input {described.id!r} takes true or false, not {text[:100]!r}",
                described.id,
            )
        return text.lower() in ("true", "1")
    return text


def _bbox_value(described: DataDescription, given: InputValue) -> dict[str, Any]:
    corners, crs = given.bbox, given.crs
    if corners is None:
        # The KVP and literal form: minx,miny,maxx,maxy[,crs]
        parts = [p.strip() for p in (given.text or "").split(",") if p.strip()]
        if parts and not _is_number(parts[-1]):
            crs = crs or parts.pop()
        corners = [float(p) for p in parts] if all(map(_is_number, parts)) else []
    if len(corners) not in (4, 6):
        raise OwsException(
            "InvalidParameterValue",
            f"input {described.id!r} takes a bounding box: 2 or 3 coordinates per corner",
            described.id,
        )
    # As a JSON client writes them: 2, not 2.0 (a tool may print what it is given).
    value: dict[str, Any] = {"bbox": [int(c) if c.is_integer() else c for c in corners]}
    if "crs" in (described.schema.get("properties") or {}) or described.schema.get("format"):
        value["crs"] = crs or CRS84
    return value


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# --- Results: the OGC results document -> WPS output values -------------------------------


def output_values(outputs: list[DataDescription], results: dict[str, Any]) -> list[OutputValue]:
    """Every output value of ``results`` (the OGC results document), in the order the
    process describes its outputs; an array gives one value per item, a missing or null
    output none."""
    values = []
    for described in outputs:
        result = results.get(described.id)
        items = result if described.array and isinstance(result, list) else [result]
        values += [_output(described, item) for item in items if item is not None]
    return values


def _output(described: DataDescription, value: Any) -> OutputValue:
    base = {"id": described.id, "title": described.title}
    if described.kind == "complex":
        href, mime_type = _reference(value, described.media_types[0])
        return OutputValue(**base, kind="complex", href=href, mime_type=mime_type)
    if described.kind == "bbox" and isinstance(value, dict) and "bbox" in value:
        return OutputValue(
            **base, kind="bbox", bbox=list(value["bbox"]), crs=value.get("crs") or CRS84
        )
    if described.kind == "literal" and not isinstance(value, dict | list):
        return OutputValue(**base, kind="literal", value=value, data_type=described.data_type)
    return OutputValue(**base, kind="json", value=value, mime_type=JSON)


def _reference(value: Any, default_type: str) -> tuple[str, str]:
    """The URL and media type of a File or Directory result (see ``flows/staging.py``)."""
    if isinstance(value, str):
        return value, default_type
    if not isinstance(value, dict):
        return str(value), default_type
    href = str(value.get("href", ""))
    if "stac_version" in value:
        return href, JSON  # a STAC catalog: its JSON document
    kind = value.get("type")
    return href, kind if isinstance(kind, str) and "/" in kind else default_type


def guess_outputs(results: dict[str, Any]) -> list[DataDescription]:
    """Output descriptions read off a results document, for a job whose process has been
    undeployed or replaced since: a ``{"href"}`` is a file, a ``{"bbox"}`` a bounding box,
    a string, number or boolean a literal, anything else JSON."""
    described = []
    for name, value in results.items():
        array = isinstance(value, list)
        item = value[0] if array and value else value
        if isinstance(item, dict) and "href" in item:
            kind: Kind = "complex"
        elif isinstance(item, dict) and "bbox" in item:
            kind = "bbox"
        elif isinstance(item, str | int | float | bool):
            kind = "literal"
        else:
            kind = "json"
        described.append(
            DataDescription(
                id=name,
                title=name,
                abstract="",
                kind=kind,
                schema={},
                data_type=_PYTHON_TYPES.get(type(item), "string"),
                media_types=(OCTET_STREAM,) if kind == "complex" else (JSON,),
                array=array,
            )
        )
    return described


_PYTHON_TYPES = {bool: "boolean", int: "integer", float: "double"}
