"""An execute request's inputs: validate them against a process, build the job order.

``validate_inputs`` checks the ``inputs`` of an OGC execute request against the process
description (:func:`cwlpkg.describe.input_schema`) and unwraps OGC qualified values;
``job_order`` turns the validated inputs into the input object cwltool (or any CWL
runner) reads, with ``File``/``Directory`` references as CWL file objects. Every error
a user can fix is raised as ``InvalidInput`` with a message meant for them.

A File or Directory input is an ``http(s)://`` or ``s3://`` URL and nothing else
(:mod:`cwlpkg.locations` says why); :func:`file_urls` lists the http(s) ones, for the
engine's outbound guard to check before the job is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match

from core.exceptions import InvalidInput
from cwlpkg import _structure
from cwlpkg.describe import input_schema
from cwlpkg.locations import input_files_problem, is_remote, remote_defaults

__all__ = ["file_urls", "job_order", "validate_inputs"]

# Keys of an OGC qualified input value (``{"value": ..., "mediaType": ...}``).
# (1.0's qualifiedInputValue: ``value`` and ``format``; ``mediaType``/``encoding``/``schema``
# at the top level as clients also write them; eoap's parameter files add the value's type
# as ``class``.)
_QUALIFIED_KEYS = {"value", "format", "mediaType", "encoding", "schema", "class"}
# ``class`` values that make a mapping a CWL file object rather than a typed value.
_CWL_CLASSES = ("File", "Directory")

_FORMATS = FormatChecker(formats=())
# Process descriptions say `oneOf` (as OGC's examples do) where branches may overlap (an
# integer is also a number): a value is valid when it matches one branch or more.
_Validator = validators.extend(
    Draft202012Validator, {"oneOf": Draft202012Validator.VALIDATORS["anyOf"]}
)


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    """A File/Directory reference (the only ``uri`` of an input schema): an http(s):// or
    s3:// URL, never a path or ``file:`` on the engine's host."""
    return not isinstance(value, str) or is_remote(value)


def validate_inputs(description: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Check an execute request's ``inputs`` against a process description.

    Accepts OGC qualified values (``{"value": x, "mediaType": ...}`` becomes ``x``,
    also inside arrays), typed ones as the eoap application-package patterns write them
    (``{"class": "…/url.yaml#URL", "value": x}``; a typed record such as ``{"class":
    "…/ogc.yaml#BBox", "bbox": [...], "crs": ...}`` loses its ``class``) and references
    (``{"href": url}``) where the schema allows them (File/Directory). Returns the
    inputs with qualified values unwrapped; defaults are not filled in. Raises
    ``InvalidInput`` naming every unknown, missing or ill-typed input at once
    (``errors`` maps input id to message).
    """
    if not isinstance(inputs, Mapping):
        raise InvalidInput("The execute request's `inputs` must be a JSON object")
    schema = input_schema(description)
    properties = schema["properties"]
    errors: dict[str, str] = {}
    normalized: dict[str, Any] = {}
    for name, raw in inputs.items():
        if name not in properties:
            expected = ", ".join(properties) or "none"
            errors[name] = f"unknown input (this process takes: {expected})"
            continue
        validator = _Validator(properties[name], format_checker=_FORMATS)
        value = _unqualified(raw, validator)
        if isinstance(value, list):
            items = _Validator(properties[name].get("items", {}), format_checker=_FORMATS)
            value = [_unqualified(item, items) for item in value]
        error = best_match(validator.iter_errors(value))
        if error is not None and value is not raw and validator.is_valid(raw):
            value, error = raw, None  # an object input whose value has a `value` key
        problem = _input_error(error) if error is not None else input_files_problem(value)
        if problem:
            errors[name] = problem
        else:
            normalized[name] = value
    for name in schema["required"]:
        if name not in inputs:
            errors[name] = "required input is missing"
    if errors:
        summary = "; ".join(f"{name}: {message}" for name, message in errors.items())
        raise InvalidInput(f"Invalid inputs: {summary}", errors=errors)
    return normalized


def job_order(doc: dict[str, Any], workflow_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A cwltool job order (input object) for ``workflow_id`` from validated inputs.

    File/Directory values (a URL or ``{"href": url}``) become ``{"class": "File"|
    "Directory", "location": url}``, element-wise in arrays and field-wise in
    records; values already in CWL form and all other values pass unchanged, as do
    values of unions of several non-null types (which member is meant is ambiguous).
    Inputs not given whose default names remote files get that default, so that
    stage-in fetches those files too (cwltool would fetch them past the outbound guard).
    """
    process = _structure.find_process(doc, workflow_id)
    types = _structure.schema_defs(process)
    params = dict(_structure.params(process.get("inputs")))
    given = {
        name: _cwl_value(params.get(name, {}).get("type"), value, types)
        for name, value in inputs.items()
    }
    return {**remote_defaults(doc, workflow_id), **given}


def file_urls(description: dict[str, Any], inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """``(input id, url)`` of every http(s) URL a job fetches for validated ``inputs``:
    File/Directory references and CWL file objects' locations (``s3://`` ones are read
    from the operator's stage-in endpoint, so they are left out)."""
    properties = input_schema(description)["properties"]
    found: list[tuple[str, str]] = []
    for name, value in inputs.items():
        for url in _urls(properties.get(name, {}), value):
            if url.lower().startswith(("http://", "https://")) and (name, url) not in found:
                found.append((name, url))
    return found


def _urls(schema: Mapping[str, Any], value: Any) -> list[str]:
    """The URLs in ``value`` where ``schema`` (an input's) has a File/Directory reference;
    a union (``oneOf`` of several types) is walked too: a URL the job may fetch is checked
    even where ``job_order`` leaves the value as it is."""
    if isinstance(value, Mapping) and value.get("class") in ("File", "Directory"):
        return [str(value["location"])] if "location" in value else []
    urls = [u for member in schema.get("oneOf", []) for u in _urls(member, value)]
    if isinstance(value, str) and schema.get("format") == "uri":
        urls.append(value)
    elif isinstance(value, Mapping):
        fields = schema.get("properties", {})
        urls += [u for key, item in value.items() for u in _urls(fields.get(key, {}), item)]
    elif isinstance(value, list):
        urls += [u for item in value for u in _urls(schema.get("items", {}), item)]
    return urls


# ---------------------------------------------------------------------------
# Helpers: request values -> CWL values


def _unqualified(value: Any, validator: Draft202012Validator) -> Any:
    """OGC qualified value ``{"value": x, "mediaType": ...}`` -> ``x``; a typed value
    ``{"class": "…#T", ...}`` -> the record without ``class`` when the input's schema
    takes that record (eoap/schemas' ``URI`` is the record ``{"value": ...}``), else
    the ``value`` it qualifies."""
    if not isinstance(value, Mapping):
        return value
    typed = "class" in value and value["class"] not in _CWL_CLASSES
    if typed:
        record = {key: item for key, item in value.items() if key != "class"}
        if "value" not in value or validator.is_valid(record):
            return record
    if "value" in value and set(value) <= _QUALIFIED_KEYS and (typed or "class" not in value):
        return value["value"]
    return value


def _input_error(error: ValidationError) -> str:
    where = f"at {error.json_path}: " if error.absolute_path else ""
    if error.validator == "format":
        return f"{where}{error.instance!r} is not an http(s):// or s3:// URL"
    if error.validator in ("oneOf", "anyOf"):
        kinds = sorted({str(branch.get("type", "any value")) for branch in error.validator_value})
        return f"{where}{error.instance!r} is not valid: expected {' or '.join(kinds)}"
    return f"{where}{error.message}"


def _cwl_value(cwl_type: Any, value: Any, types: Mapping[str, Any]) -> Any:
    if isinstance(cwl_type, str):
        if cwl_type.endswith("?"):
            return _cwl_value(cwl_type[:-1], value, types)
        if cwl_type.endswith("[]"):
            return _cwl_value({"type": "array", "items": cwl_type[:-2]}, value, types)
        if cwl_type in _structure.FILE_TYPES:
            return _location(_structure.FILE_TYPES[cwl_type], value)
        named = types.get(_structure.short_name(cwl_type))
        return _cwl_value(named, value, types) if named is not None else value
    if isinstance(cwl_type, list):
        members = [t for t in cwl_type if t != "null"]
        return _cwl_value(members[0], value, types) if len(members) == 1 else value
    if isinstance(cwl_type, Mapping):
        if cwl_type.get("type") == "array" and isinstance(value, list):
            return [_cwl_value(cwl_type.get("items"), item, types) for item in value]
        if cwl_type.get("type") == "record" and isinstance(value, Mapping):
            fields = dict(_structure.params(cwl_type.get("fields"), key="name"))
            return {
                k: _cwl_value(fields.get(k, {}).get("type"), v, types) for k, v in value.items()
            }
    return value


def _location(cls: str, value: Any) -> Any:
    if isinstance(value, str):
        return {"class": cls, "location": value}
    if isinstance(value, Mapping) and "href" in value and "class" not in value:
        return {"class": cls, "location": value["href"]}
    return value
