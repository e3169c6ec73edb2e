"""A CWL process as an OGC API - Processes Part 1 1.0 process description.

``describe`` gives the description the gateway serves (and deploys from);
``input_schema`` turns it into one JSON Schema of an execute request's ``inputs``, which
:mod:`cwlpkg.inputs` validates against and Prefect shows as the deployment's form.

Schema choices for the process description (``describe``):

* ``File``/``Directory`` inputs accept a URL or an OGC reference object::

      {"oneOf": [{"type": "string", "format": "uri"},
                 {"type": "object", "required": ["href"],
                  "properties": {"href": {"type": "string", "format": "uri"},
                                 "type": {"type": "string"}}}]}

  the two branches never overlap, so strict ``oneOf`` is unambiguous; ``job_order``
  turns either into ``{"class": "File"|"Directory", "location": url}``. A Directory
  is typically the URL of a folder or of a STAC catalog/item.
* ``File``/``Directory`` outputs are ``{"type": "string", "format": "uri"}``, plus
  ``contentMediaType`` when the CWL ``format`` is an IANA media-type IRI
  (``https://www.iana.org/assignments/media-types/<type>``); other format IRIs
  (EDAM, ...) are not media types and are left out.
* CWL arrays (``T[]``) stay one input whose schema is ``{"type": "array", "items": ...}``
  with ``minOccurs``/``maxOccurs`` 1 (``minOccurs`` 0 if optional): the value is passed
  to CWL unchanged, nested arrays and empty arrays keep their meaning, and OGC
  ``maxOccurs`` multiplicity is not needed.
* Optional types (``T?``, ``["null", T]``) and inputs with a ``default`` have
  ``minOccurs`` 0; the default is copied into the schema (File/Directory defaults
  as their location). Unions of several types become ``oneOf`` (as OGC's examples
  write them; validation reads it as ``anyOf``, see :mod:`cwlpkg.inputs`); ``Any`` is ``{}``;
  enums are ``{"type": "string", "enum": [...]}``; records ``{"type": "object",
  "properties": ...}``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cwlpkg import _structure

__all__ = ["describe", "input_schema"]

_SCALARS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
    "Any": {},
}
_SCHEMA_ORG = ("https://schema.org/", "http://schema.org/")
_IANA_MEDIA_TYPES = (
    "https://www.iana.org/assignments/media-types/",
    "http://www.iana.org/assignments/media-types/",
)


def describe(doc: dict[str, Any], workflow_id: str) -> dict[str, Any]:
    """The OGC API - Processes Part 1 1.0 description of process ``workflow_id``.

    Returns ``id``, ``title`` (CWL ``label``, else the id), ``description`` (CWL
    ``doc``), ``version`` (``s:softwareVersion`` of the process or document, with
    ``s`` bound to schema.org; else "1.0.0"), ``keywords`` (``s:keywords``, a list or
    a comma-separated string), ``inputs`` and ``outputs``; the caller adds ``links``,
    ``jobControlOptions`` and ``outputTransmission``. See the module docstring for
    the type mapping. Raises ``InvalidPackage`` if ``workflow_id`` is not in ``doc``.
    """
    process = _structure.find_process(doc, workflow_id)
    types = _structure.schema_defs(process)
    namespaces = doc.get("$namespaces") or {}
    version = _schema_org(doc, process, "softwareVersion")
    keywords = _schema_org(doc, process, "keywords") or []
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",") if k.strip()]
    inputs = {}
    for name, param in _structure.params(process.get("inputs")):
        schema = _schema(param.get("type"), types, _input_file_schema())
        default = param.get("default")
        if default is not None:
            schema["default"] = _default_value(default)
        optional = default is not None or _is_optional(param.get("type"))
        inputs[name] = {
            **_texts(param, name),
            "schema": schema,
            "minOccurs": 0 if optional else 1,
            "maxOccurs": 1,
        }
    outputs = {}
    for name, param in _structure.params(process.get("outputs")):
        file_schema: dict[str, Any] = {"type": "string", "format": "uri"}
        media_type = _media_type(param.get("format"), namespaces)
        if media_type:
            file_schema["contentMediaType"] = media_type
        outputs[name] = {
            **_texts(param, name),
            "schema": _schema(param.get("type"), types, file_schema),
        }
    return {
        "id": workflow_id,
        **_texts(process, workflow_id),
        "version": str(version) if version is not None else "1.0.0",
        "keywords": [str(k) for k in keywords],
        "inputs": inputs,
        "outputs": outputs,
    }


def input_schema(description: dict[str, Any]) -> dict[str, Any]:
    """One JSON Schema (draft 2020-12) for the ``inputs`` object of an execute request.

    A property per input (title and description included, for the Prefect parameter
    form), an array of the input's schema where ``maxOccurs`` > 1, ``required`` for
    inputs with ``minOccurs`` >= 1 and no default, no other properties allowed.
    """
    properties: dict[str, Any] = {}
    required = []
    for name, spec in description["inputs"].items():
        texts = {"title": spec.get("title", name), "description": spec.get("description", "")}
        min_occurs, max_occurs = spec.get("minOccurs", 1), spec.get("maxOccurs", 1)
        if max_occurs == "unbounded" or max_occurs > 1:
            prop = {**texts, "type": "array", "items": spec["schema"], "minItems": min_occurs}
            if max_occurs != "unbounded":
                prop["maxItems"] = max_occurs
        else:
            prop = {**spec["schema"], **texts}
        properties[name] = prop
        if min_occurs >= 1 and "default" not in spec["schema"]:
            required.append(name)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# ---------------------------------------------------------------------------
# Helpers: annotations, CWL types -> JSON Schema


def _schema_org(doc: Mapping[str, Any], process: Mapping[str, Any], term: str) -> Any:
    """A schema.org annotation (``s:<term>``) of the process, else of the document."""
    namespaces = doc.get("$namespaces") or {}
    keys = [f"{base}{term}" for base in _SCHEMA_ORG] + [
        f"{prefix}:{term}" for prefix, base in namespaces.items() if base in _SCHEMA_ORG
    ]
    for source in (process, doc):
        for key in keys:
            if key in source:
                return source[key]
    return None


def _media_type(fmt: Any, namespaces: Mapping[str, str]) -> str | None:
    """``iana:image/tiff`` or the full IANA IRI -> ``image/tiff``; other formats -> None."""
    if not isinstance(fmt, str):
        return None
    prefix, _, rest = fmt.partition(":")
    iri = namespaces[prefix] + rest if prefix in namespaces else fmt
    for base in _IANA_MEDIA_TYPES:
        if iri.startswith(base):
            return iri[len(base) :]
    return None


def _texts(obj: Mapping[str, Any], fallback: str) -> dict[str, str]:
    """OGC ``title``/``description`` from CWL ``label``/``doc`` (doc may be a list)."""
    doc = obj.get("doc", "")
    return {
        "title": str(obj.get("label") or fallback),
        "description": "\n".join(doc) if isinstance(doc, list) else str(doc),
    }


def _input_file_schema() -> dict[str, Any]:
    return {
        "oneOf": [
            {"type": "string", "format": "uri"},
            {
                "type": "object",
                "required": ["href"],
                "properties": {
                    "href": {"type": "string", "format": "uri"},
                    "type": {"type": "string"},
                },
            },
        ]
    }


def _is_optional(cwl_type: Any) -> bool:
    if isinstance(cwl_type, str):
        return cwl_type.endswith("?") or cwl_type == "null"
    return isinstance(cwl_type, list) and "null" in cwl_type


def _schema(cwl_type: Any, types: Mapping[str, Any], file_schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of a CWL type; optionality (null) is expressed by minOccurs instead."""
    if isinstance(cwl_type, str):
        if cwl_type.endswith("?"):
            return _schema(cwl_type[:-1], types, file_schema)
        if cwl_type.endswith("[]"):
            return {"type": "array", "items": _schema(cwl_type[:-2], types, file_schema)}
        if cwl_type in _SCALARS:
            return dict(_SCALARS[cwl_type])
        if cwl_type in _structure.FILE_TYPES:
            return copy.deepcopy(file_schema)
        named = types.get(_structure.short_name(cwl_type))
        return _schema(named, types, file_schema) if named is not None else {}
    if isinstance(cwl_type, list):
        members = [_schema(t, types, file_schema) for t in cwl_type if t != "null"]
        return members[0] if len(members) == 1 else {"oneOf": members} if members else {}
    if not isinstance(cwl_type, Mapping):
        return {}
    kind = cwl_type.get("type")
    if kind == "array":
        return {"type": "array", "items": _schema(cwl_type.get("items"), types, file_schema)}
    if kind == "enum":
        symbols = cwl_type.get("symbols", [])
        return {
            "type": "string",
            "enum": [_structure.short_name(s) if "#" in s else s for s in symbols],
        }
    if kind == "record":
        fields = _structure.params(cwl_type.get("fields"), key="name")
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {n: _schema(f.get("type"), types, file_schema) for n, f in fields},
        }
        required = [n for n, f in fields if not _is_optional(f.get("type"))]
        if required:
            schema["required"] = required
        return schema
    return {}


def _default_value(value: Any) -> Any:
    """A CWL default as a request value: File/Directory objects become their location."""
    if isinstance(value, Mapping):
        if value.get("class") in ("File", "Directory"):
            return value.get("location", value.get("path"))
        return {k: _default_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_default_value(v) for v in value]
    return value
