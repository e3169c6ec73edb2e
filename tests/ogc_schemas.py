"""Validate JSON documents against the official OGC API - Processes schemas.

The schemas are the official OpenAPI 3.0 YAML schema objects, in the reference folder
``ogcapi-processes/`` (``tests.reference``; without it, a test that validates is skipped):
Part 1 1.0 for the core documents, the master branch ``schemas/processes-dru/`` folder for
Part 2 (DRU).

Usage::

    from tests.ogc_schemas import validate

    validate(response.json(), "statusInfo")  # AssertionError lists every violation

The YAML is read as JSON Schema Draft 7 after a small, schema-aware tree transform
(see ``_to_draft7``) that removes OpenAPI 3.0 / Draft 7 mismatches which would
otherwise reject valid documents. Nothing else in the schemas is changed: known
defects of the official files (listed in ``tests/test_ogc_schemas.py``) are kept,
so a document that passes here passes the published schema.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from jsonschema import Draft7Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from tests import reference

__all__ = ["SCHEMA_FILES", "validate", "validate_if_available"]

_PART1 = Path("part1-1.0__commit-81898e9", "core", "openapi", "schemas")
_MASTER = Path("master__part1-2.0-draft_part2-dru_part3_part4", "openapi", "schemas")

#: Document name -> the schema file it is validated against, in ``ogcapi-processes/``.
SCHEMA_FILES: dict[str, Path] = {
    "landingPage": _PART1 / "landingPage.yaml",
    "confClasses": _PART1 / "confClasses.yaml",
    "processList": _PART1 / "processList.yaml",
    "process": _PART1 / "process.yaml",
    "processSummary": _PART1 / "processSummary.yaml",
    "jobList": _PART1 / "jobList.yaml",
    "statusInfo": _PART1 / "statusInfo.yaml",
    "results": _PART1 / "results.yaml",
    "exception": _PART1 / "exception.yaml",
    "execute": _PART1 / "execute.yaml",
    "ogcapppkg": _MASTER / "processes-dru" / "ogcapppkg.yaml",
}

# Keywords whose value is one subschema, a list of subschemas, or a name -> subschema
# map. Everything else (enum, default, example, xml, discriminator, ...) is data and
# is never rewritten, so a property *named* "oneOf" or "nullable" stays untouched.
_ONE_SCHEMA = (
    "not",
    "additionalItems",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
)
_SCHEMA_LIST = ("allOf", "anyOf", "oneOf")
_SCHEMA_MAP = ("properties", "patternProperties", "definitions", "$defs")


def _to_draft7(schema: Any) -> Any:
    """Return a copy of an OpenAPI 3.0 schema object that Draft 7 reads the same way.

    Three rewrites, applied only where a subschema is expected:

    * ``oneOf`` -> ``anyOf``. The Part 1 1.0 value schemas are ambiguous under a
      strict ``oneOf``: a plain string matches both ``type: string`` and the
      ``binaryInputValue`` branch (``type: string, format: byte``), an integer
      matches both ``number`` and ``integer``, so every such valid input or result
      would be rejected for matching more than one branch. This is
      opengeospatial/ogcapi-processes issue 350; the standard's intent is
      "one of these shapes", which ``anyOf`` expresses.
    * ``nullable: true`` (OpenAPI 3.0) -> ``null`` added to ``type`` (and to
      ``enum`` if present, or the enum would still reject null). Without a ``type``
      the schema becomes ``anyOf: [{type: null}, <schema>]``.
    * boolean ``exclusiveMinimum``/``exclusiveMaximum`` (OpenAPI 3.0 / Draft 4
      modifiers of ``minimum``/``maximum``) -> Draft 7 numeric bounds. Draft 7
      would compare the number with ``True`` (== 1): Part 1 1.0 ``schema.yaml``
      says ``multipleOf: {minimum: 0, exclusiveMinimum: true}``, which would
      otherwise reject ``multipleOf: 0.5``.
    """
    if isinstance(schema, list):  # tuple-form "items"
        return [_to_draft7(s) for s in schema]
    if not isinstance(schema, dict):  # boolean schema
        return schema
    out = dict(schema)
    for key in _ONE_SCHEMA:
        if key in out:
            out[key] = _to_draft7(out[key])
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), (dict, list)):
            out[key] = _to_draft7(out[key])
    for key in _SCHEMA_MAP:
        if isinstance(out.get(key), dict):
            out[key] = {name: _to_draft7(sub) for name, sub in out[key].items()}
    if isinstance(out.get("dependencies"), dict):
        out["dependencies"] = {
            name: _to_draft7(dep) if isinstance(dep, dict) else dep
            for name, dep in out["dependencies"].items()
        }
    for key in _SCHEMA_LIST:
        if key in out:
            out[key] = [_to_draft7(s) for s in out[key]]

    if "oneOf" in out:
        branches = out.pop("oneOf")
        if "anyOf" in out:
            out.setdefault("allOf", []).append({"anyOf": branches})
        else:
            out["anyOf"] = branches

    for bound, limit in (
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ):
        exclusive = out.get(bound)
        if isinstance(exclusive, bool):
            del out[bound]
            if exclusive and limit in out:
                out[bound] = out.pop(limit)

    if out.pop("nullable", False) is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"] if "null" not in types else types
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _retrieve(uri: str) -> Resource:
    """Load a referenced YAML file; ``uri`` is an absolute ``file://`` URI."""
    if not uri.startswith("file://"):
        # A few master (2.0 draft) files point at schemas.opengis.net; the tests run
        # offline, so say so instead of silently accepting anything.
        raise NoSuchResource(ref=uri)
    path = Path(unquote(urlparse(uri).path))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NoSuchResource(ref=uri) from exc
    return Resource.from_contents(_to_draft7(document), default_specification=DRAFT7)


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")

# Only the two formats the brief asks for, with checks that cannot reject a valid
# value: RFC 3339 date-time (time zone required, as RFC 3339 says) and an absolute
# URI (scheme + no whitespace). "byte", "url", "uri-reference", "regex" stay unchecked.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_RFC3339.match(value))


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


@functools.cache
def _validator(name: str) -> Draft7Validator:
    try:
        path = SCHEMA_FILES[name]
    except KeyError:
        raise ValueError(
            f"unknown schema {name!r}; expected one of {sorted(SCHEMA_FILES)}"
        ) from None
    path = reference.ogc_schemas() / path  # skips the calling test without the schemas
    registry: Registry = Registry(retrieve=_retrieve)
    return Draft7Validator(
        {"$ref": path.resolve().as_uri()}, registry=registry, format_checker=_FORMATS
    )


def _shorten(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(errors: Iterable[ValidationError], indent: str = "  ") -> Iterator[str]:
    """Yield one line per violation; anyOf branch failures indented below it.

    The same line twice (e.g. ``type: object`` in two ``allOf`` parts) is shown once.
    """
    seen: set[str] = set()
    for error in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        line = f"{indent}{error.json_path}: {_shorten(error.message)}"
        if line in seen:
            continue
        seen.add(line)
        yield line
        if error.context:
            yield from _describe(error.context, indent + "    ")


def validate(instance: object, name: str) -> None:
    """Validate ``instance`` (parsed JSON) against the OGC schema called ``name``.

    ``name`` is a key of ``SCHEMA_FILES``. Raises ``AssertionError`` whose message
    lists every violation as ``<JSON path>: <message>``; branch failures of an
    ``anyOf`` are indented under it. Skips the calling test when the schemas are not
    to be had (``tests.reference``).
    """
    errors = list(_validator(name).iter_errors(instance))
    if errors:
        details = "\n".join(_describe(errors))
        raise AssertionError(f"not a valid {name}:\n{details}")


def validate_if_available(instance: object, name: str) -> None:
    """:func:`validate` when the OGC schemas can be had; nothing otherwise.

    For the helpers that check every document a behaviour test meets on its way
    (``tests/support.py``): without the reference material those tests still test the
    behaviour, while the tests whose point is the schema (``tests/test_ogc_schemas.py``)
    skip.
    """
    if reference.find(reference.OGC_SCHEMAS) is not None:
        validate(instance, name)
