"""CWL application packages: parse, validate, describe as OGC processes, run.

Pure functions (no Prefect) used by the gateway at deploy/execute time and by the
flow before it hands a workflow to a backend::

    doc = parse_document(text)                  # YAML/JSON -> plain dict
    validate_document(doc)                      # cwltool's own loader and checks
    process_id = select_workflow(doc, w)        # ?w= or the root Workflow
    description = describe(doc, process_id)     # OGC Part 1 1.0 process description
    inputs = validate_inputs(description, request["inputs"])
    packed = pack(doc, process_id)              # write as packed.cwl
    order = job_order(doc, process_id, inputs)  # write as job.json
    # run: cwltool packed.cwl#<entrypoint(packed)> job.json

Every error a user can fix is raised as ``InvalidPackage`` (the CWL) or
``InvalidInput`` (the execute request) with a message meant for them.

No network, no local files: cwltool loads the package through a fetcher that
serves only the package itself (``_PackageFetcher``), so ``$import``, ``$include``
or ``run:`` pointing anywhere else is refused (a package must be self-contained,
as OGC Application Packages are: one file, processes in ``$graph``). The
``schemas:`` / ``$schemas:`` entries (remote RDF ontologies, e.g. schema.org's
``schemaorg-current-http.rdf`` in every EOEPCA package) are dropped before loading:
cwltool would download them to reason about ``format`` IRIs, and ``schemas:`` (as the
OGC best practice spells it) is not a CWL field, so a single-process document
carrying it fails strict validation.

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
  as their location). Unions of several types become ``anyOf``; ``Any`` is ``{}``;
  enums are ``{"type": "string", "enum": [...]}``; records ``{"type": "object",
  "properties": ...}``.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from cwltool.context import LoadingContext
from cwltool.errors import WorkflowException
from cwltool.load_tool import (
    default_loader,
    fetch_document,
    make_tool,
    resolve_and_validate_document,
)
from cwltool.pack import pack as cwltool_pack
from cwltool.workflow import default_make_tool
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from schema_salad.exceptions import SchemaSaladException, ValidationException
from schema_salad.fetcher import DefaultFetcher
from schema_salad.sourceline import relname
from schema_salad.utils import yaml_no_ts

from core.exceptions import InvalidInput, InvalidPackage

__all__ = [
    "step_count",
    "describe",
    "entrypoint",
    "input_schema",
    "job_order",
    "pack",
    "parse_document",
    "select_workflow",
    "validate_document",
    "validate_inputs",
    "workflow_ids",
]

_BASE_URI = "file:///package.cwl"
_SUPPORTED_VERSIONS = ("v1.0", "v1.1", "v1.2")
_MAX_NODES = 500_000  # values in one parsed package; real ones have a few thousand
_MAX_DETAIL = 2000  # characters of a validator message kept in an error detail
# "path/package.cwl:12:5: " at the start of a cwltool message line.
_SOURCE_LOCATION = re.compile(r"^\S+:\d+:\d+: ?", re.MULTILINE)
_TOOL_CLASSES = ("CommandLineTool", "ExpressionTool")  # deployable without a Workflow
# CWL types whose values are files, and the CWL class of those values.
_FILE_TYPES = {
    "File": "File",
    "Directory": "Directory",
    "stdin": "File",
    "stdout": "File",
    "stderr": "File",
}
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
# Keys of an OGC qualified input value (``{"value": ..., "mediaType": ...}``).
_QUALIFIED_KEYS = {"value", "mediaType", "encoding", "schema"}
# What loading a user's document can raise: cwltool assumes a well-formed structure
# and fails with plain Python errors on some malformed ones (e.g. `inputs: 5`).
_LOAD_ERRORS = (
    SchemaSaladException,
    WorkflowException,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
)

_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    """An absolute URI: a scheme is enough (s3://, https://, file://, ...)."""
    return not isinstance(value, str) or bool(urllib.parse.urlsplit(value).scheme)


# ---------------------------------------------------------------------------
# Parsing and selecting


def parse_document(text: str | bytes, *, base_uri: str = _BASE_URI) -> dict[str, Any]:
    """Parse a CWL document written as YAML (1.2, as CWL is) or JSON into a plain dict.

    ``base_uri`` names the document in error messages (e.g. the deploy ``href``).
    Raises ``InvalidPackage`` for text that is not UTF-8, not YAML/JSON (with the
    line and column of the problem) or not a mapping.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidPackage(
                f"{base_uri}: the package is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
    try:
        loaded = json.loads(text)
    except RecursionError:
        raise InvalidPackage(f"{base_uri}: the package is nested too deeply") from None
    except ValueError:
        # Not JSON: YAML, parsed like cwltool does (YAML 1.2, no timestamp conversion).
        try:
            loaded = yaml_no_ts().load(text)
        except YAMLError as exc:
            raise InvalidPackage(
                f"{base_uri}: the package is not valid YAML or JSON: {_yaml_problem(exc)}"
            ) from exc
        except RecursionError:
            raise InvalidPackage(f"{base_uri}: the package is nested too deeply") from None
    if not isinstance(loaded, Mapping):
        raise InvalidPackage(
            f"{base_uri}: a CWL document must be a mapping (a process, or `$graph` with "
            f"processes), not {type(loaded).__name__}"
        )
    try:
        return _plain(loaded)
    except TypeError as exc:
        raise InvalidPackage(f"{base_uri}: {exc} (custom YAML tags are not allowed)") from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidPackage(f"{base_uri}: {exc or 'the package is nested too deeply'}") from exc


def workflow_ids(doc: dict[str, Any]) -> list[str]:
    """Short ids (no ``#``) of the top-level ``class: Workflow`` processes, in order."""
    return [
        _fragment(process["id"])
        for process in _processes(doc)
        if process.get("class") == "Workflow" and isinstance(process.get("id"), str)
    ]


def select_workflow(doc: dict[str, Any], w: str | None) -> str:
    """The id of the process to expose: ``w`` (the ``?w=`` parameter), else the only one.

    Candidates are the Workflows; a document without any Workflow offers its
    CommandLineTool/ExpressionTool instead. Several candidates and no ``w``: the
    single root (a Workflow no other Workflow step runs) wins. Raises
    ``InvalidPackage`` when ``w`` names no candidate, when the choice stays ambiguous
    (naming the roots and suggesting ``?w=``), or when the process has no ``id``.
    """
    processes = _processes(doc)
    candidates = [p for p in processes if p.get("class") == "Workflow"] or [
        p for p in processes if p.get("class") in _TOOL_CLASSES
    ]
    if not candidates:
        raise InvalidPackage("The package holds no Workflow or CommandLineTool to deploy")
    missing_id = [p for p in candidates if not isinstance(p.get("id"), str)]
    if missing_id:
        raise InvalidPackage(
            f"The {missing_id[0]['class']} has no `id`; the process id comes from it, "
            "so add e.g. `id: my-process`"
        )
    ids = [_fragment(p["id"]) for p in candidates]
    if w is not None:
        if w in ids:
            return w
        raise InvalidPackage(f"The package has no Workflow {w!r}; available: {', '.join(ids)}")
    if len(ids) == 1:
        return ids[0]
    roots = [i for i in _roots(processes) if i in ids]
    if len(roots) == 1:
        return roots[0]
    raise InvalidPackage(
        f"The package has several {'root ' if roots else ''}Workflows "
        f"({', '.join(roots or ids)}); choose the one to deploy with ?w=<id>"
    )


# ---------------------------------------------------------------------------
# Validation with cwltool


class _PackageFetcher(DefaultFetcher):
    """Serve the package (as JSON text) at ``_BASE_URI`` and refuse every other URL.

    Keeps cwltool off the network and off the local disk; ``check_exists`` answers
    False for anything else, so ``run: other.cwl`` is an "undefined reference".
    """

    def __init__(self, cache: dict[str, Any], session: object, *, text: str) -> None:
        super().__init__(cache, None)
        self._text = text

    def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
        if url == _BASE_URI:
            return self._text
        raise ValidationException(
            f"{url!r} is outside the package: an application package must be "
            "self-contained (put every process in its `$graph`)"
        )

    def check_exists(self, url: str) -> bool:
        return url == _BASE_URI


def validate_document(doc: dict[str, Any]) -> None:
    """Validate ``doc`` the way ``cwltool --validate`` does, without network access.

    Loads it with cwltool's loader (schema-salad validation, then the upgrade to
    CWL v1.2) and builds every root process, which runs cwltool's static checks
    (step connections, source/sink types, supported requirements). Raises
    ``InvalidPackage`` for a missing or unsupported ``cwlVersion`` (v1.0, v1.1 and
    v1.2 are supported) or with the validator's message (at most 2000 characters).
    Measured: 60 ms (convert-url) to 300 ms (water-bodies, mostly building the
    tools) once warm; the first call in a Python process takes 1.2-1.5 s more,
    loading the CWL schemas. Logs cwltool/salad warnings (stderr), never prints.
    """
    version = doc.get("cwlVersion")
    if version not in _SUPPORTED_VERSIONS:
        found = f"cwlVersion {version!r} is not supported" if version else "cwlVersion is missing"
        raise InvalidPackage(
            f"{found}: the engine supports CWL {', '.join(_SUPPORTED_VERSIONS)} "
            "(older documents can be upgraded with cwl-upgrader)"
        )
    with _cwltool_errors():
        context, workflow_obj, uri = fetch_document(_BASE_URI, _loading_context(doc))
        context, uri = resolve_and_validate_document(context, workflow_obj, uri)
    processes = _processes(doc)
    cycle = _cycle(processes)
    if cycle:
        # cwltool would recurse until RecursionError (seconds of CPU) building it.
        raise InvalidPackage(f"Workflow steps run each other in a cycle: {' -> '.join(cycle)}")
    # Building the roots builds everything they run; without cycles that is all.
    graph = "$graph" in doc
    with _cwltool_errors():
        for target in [f"{_BASE_URI}#{r}" for r in _roots(processes)] if graph else [uri]:
            make_tool(target, context)


def pack(doc: dict[str, Any], workflow_id: str) -> dict[str, Any]:
    """A self-contained, JSON-serialisable CWL document running ``workflow_id``.

    Uses ``cwltool --pack``'s algorithm: ``{"cwlVersion", "$graph": [...]}`` holding
    the chosen process renamed ``#main`` and the processes it runs (others dropped),
    at the document's own CWL version; ``$schemas`` is removed. Runners execute
    ``packed.cwl#main`` (see ``entrypoint``), which cwltool also picks by default
    for a bare ``packed.cwl``. Takes 45-270 ms (it reloads the document). Raises
    ``InvalidPackage`` if ``workflow_id`` is not in ``doc`` or cwltool cannot load it.
    """
    _process(doc, workflow_id)
    with _cwltool_errors():
        packed = _plain(cwltool_pack(_loading_context(doc), f"{_BASE_URI}#{workflow_id}"))
    for item in (packed, *packed["$graph"]):
        item.pop("$schemas", None)
    return packed


def entrypoint(packed: dict[str, Any]) -> str:
    """The URI fragment (without ``#``) of the process to run in a ``pack`` result."""
    for process in packed.get("$graph", []):
        if _fragment(process.get("id", "")) == "main":
            return "main"
    raise InvalidPackage("Not a packed CWL document: its `$graph` has no process `#main`")


# ---------------------------------------------------------------------------
# OGC process description


def describe(doc: dict[str, Any], workflow_id: str) -> dict[str, Any]:
    """The OGC API - Processes Part 1 1.0 description of process ``workflow_id``.

    Returns ``id``, ``title`` (CWL ``label``, else the id), ``description`` (CWL
    ``doc``), ``version`` (``s:softwareVersion`` of the process or document, with
    ``s`` bound to schema.org; else "1.0.0"), ``keywords`` (``s:keywords``, a list or
    a comma-separated string), ``inputs`` and ``outputs``; the caller adds ``links``,
    ``jobControlOptions`` and ``outputTransmission``. See the module docstring for
    the type mapping. Raises ``InvalidPackage`` if ``workflow_id`` is not in ``doc``.
    """
    process = _process(doc, workflow_id)
    types = _schema_defs(process)
    namespaces = doc.get("$namespaces") or {}
    version = _schema_org(doc, process, "softwareVersion")
    keywords = _schema_org(doc, process, "keywords") or []
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",") if k.strip()]
    inputs = {}
    for name, param in _params(process.get("inputs")):
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
    for name, param in _params(process.get("outputs")):
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


def validate_inputs(description: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Check an execute request's ``inputs`` against a process description.

    Accepts OGC qualified values (``{"value": x, "mediaType": ...}`` becomes ``x``,
    also inside arrays) and references (``{"href": url}``) where the schema allows
    them (File/Directory). Returns the inputs with qualified values unwrapped;
    defaults are not filled in. Raises ``InvalidInput`` naming every unknown,
    missing or ill-typed input at once (``errors`` maps input id to message).
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
        value = _unqualified(raw)
        if isinstance(value, list):
            value = [_unqualified(item) for item in value]
        validator = Draft202012Validator(properties[name], format_checker=_FORMATS)
        error = best_match(validator.iter_errors(value))
        if error is not None:
            errors[name] = _input_error(error)
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
    """
    process = _process(doc, workflow_id)
    types = _schema_defs(process)
    params = dict(_params(process.get("inputs")))
    return {
        name: _cwl_value(params.get(name, {}).get("type"), value, types)
        for name, value in inputs.items()
    }


# ---------------------------------------------------------------------------
# Helpers: document structure


def step_count(doc: dict[str, Any], workflow_id: str) -> int:
    """Steps of the workflow ``workflow_id`` (0 for a single tool); used for progress."""
    steps = _process(doc, workflow_id).get("steps") or []
    return len(steps)


def _plain(obj: Any, budget: list[int] | None = None) -> Any:
    """ruamel's CommentedMap/Seq and scalar subclasses -> plain JSON types (else TypeError).

    At most ``_MAX_NODES`` values (``ValueError`` past that): YAML aliases can make a
    few hundred bytes expand to billions of values.
    """
    budget = budget if budget is not None else [_MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"the document expands to more than {_MAX_NODES} values")
    if isinstance(obj, Mapping):
        return {str(key): _plain(value, budget) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(value, budget) for value in obj]
    if obj is None:
        return None
    for kind in (bool, int, float, str):  # bool first: it is an int
        if isinstance(obj, kind):
            return kind(obj)
    raise TypeError(f"unsupported value {obj!r}")


def _yaml_problem(exc: YAMLError) -> str:
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc)


def _processes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The top-level processes: the ``$graph`` entries, or the document itself."""
    graph = doc.get("$graph")
    if graph is None:
        return [dict(doc)]
    return [p for p in graph if isinstance(p, dict)] if isinstance(graph, list) else []


def _process(doc: Mapping[str, Any], process_id: str) -> dict[str, Any]:
    for process in _processes(doc):
        if _fragment(str(process.get("id", ""))) == process_id:
            return process
    raise InvalidPackage(f"The package has no process {process_id!r}")


def _fragment(ref: str) -> str:
    """``file:///p.cwl#wf`` / ``#wf`` / ``wf`` -> ``wf``."""
    return ref.rpartition("#")[2]


def _name(ref: str) -> str:
    """A parameter's short name: ``#wf/step/fn`` / ``fn`` -> ``fn``."""
    return _fragment(ref).rpartition("/")[2]


def _run_refs(process: Mapping[str, Any]) -> set[str]:
    """Ids of the processes the steps of ``process`` run (inline processes searched too)."""
    refs: set[str] = set()
    steps = process.get("steps") or []
    for step in steps.values() if isinstance(steps, Mapping) else steps:
        run = step.get("run") if isinstance(step, Mapping) else None
        if isinstance(run, str):
            refs.add(_fragment(run))
        elif isinstance(run, Mapping):
            refs |= _run_refs(run)
    return refs


def _roots(processes: list[dict[str, Any]]) -> list[str]:
    """Ids of the processes that no step of another process runs."""
    referenced = set().union(*(_run_refs(p) for p in processes))
    ids = [_fragment(p["id"]) for p in processes if isinstance(p.get("id"), str)]
    return [i for i in ids if i not in referenced]


def _cycle(processes: list[dict[str, Any]]) -> list[str] | None:
    """A cycle of ``run:`` references between processes (``[a, b, a]``), if any."""
    edges = {_fragment(p["id"]): _run_refs(p) for p in processes if isinstance(p.get("id"), str)}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done or node not in edges:
            return None
        for target in sorted(edges[node]):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    return next(filter(None, (visit(node, []) for node in edges)), None)


def _params(section: Any, key: str = "id") -> list[tuple[str, dict[str, Any]]]:
    """Inputs/outputs/record fields, written as a map or a list, as (name, param)."""
    if isinstance(section, Mapping):
        return [
            (_name(name), dict(value) if isinstance(value, Mapping) else {"type": value})
            for name, value in section.items()
        ]
    return [(_name(str(p[key])), p) for p in section or [] if isinstance(p, Mapping) and key in p]


def _requirement(process: Mapping[str, Any], cls: str) -> dict[str, Any] | None:
    requirements = process.get("requirements") or []
    if isinstance(requirements, Mapping):
        found = requirements.get(cls)
        return dict(found) if isinstance(found, Mapping) else None
    return next((r for r in requirements if isinstance(r, Mapping) and r.get("class") == cls), None)


def _schema_defs(process: Mapping[str, Any]) -> dict[str, Any]:
    """Named types of the process's SchemaDefRequirement, by short name.

    Names are scoped by the process id once loaded (``Mode`` in process ``tool`` is
    referenced as ``#tool/Mode``), so both sides are reduced to the last segment.
    """
    requirement = _requirement(process, "SchemaDefRequirement") or {}
    return {
        _name(t["name"]): t
        for t in requirement.get("types", [])
        if isinstance(t, Mapping) and isinstance(t.get("name"), str)
    }


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


# ---------------------------------------------------------------------------
# Helpers: CWL types -> JSON Schema, values -> CWL


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
        if cwl_type in _FILE_TYPES:
            return copy.deepcopy(file_schema)
        named = types.get(_name(cwl_type))
        return _schema(named, types, file_schema) if named is not None else {}
    if isinstance(cwl_type, list):
        members = [_schema(t, types, file_schema) for t in cwl_type if t != "null"]
        return members[0] if len(members) == 1 else {"anyOf": members} if members else {}
    if not isinstance(cwl_type, Mapping):
        return {}
    kind = cwl_type.get("type")
    if kind == "array":
        return {"type": "array", "items": _schema(cwl_type.get("items"), types, file_schema)}
    if kind == "enum":
        symbols = cwl_type.get("symbols", [])
        return {"type": "string", "enum": [_name(s) if "#" in s else s for s in symbols]}
    if kind == "record":
        fields = _params(cwl_type.get("fields"), key="name")
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


def _unqualified(value: Any) -> Any:
    """OGC qualified value ``{"value": x, "mediaType": ...}`` -> ``x``."""
    if isinstance(value, Mapping) and "value" in value and set(value) <= _QUALIFIED_KEYS:
        return value["value"]
    return value


def _input_error(error: ValidationError) -> str:
    where = f"at {error.json_path}: " if error.absolute_path else ""
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
        if cwl_type in _FILE_TYPES:
            return _location(_FILE_TYPES[cwl_type], value)
        named = types.get(_name(cwl_type))
        return _cwl_value(named, value, types) if named is not None else value
    if isinstance(cwl_type, list):
        members = [t for t in cwl_type if t != "null"]
        return _cwl_value(members[0], value, types) if len(members) == 1 else value
    if isinstance(cwl_type, Mapping):
        if cwl_type.get("type") == "array" and isinstance(value, list):
            return [_cwl_value(cwl_type.get("items"), item, types) for item in value]
        if cwl_type.get("type") == "record" and isinstance(value, Mapping):
            fields = dict(_params(cwl_type.get("fields"), key="name"))
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


# ---------------------------------------------------------------------------
# Helpers: cwltool loading


def _loading_context(doc: Mapping[str, Any]) -> LoadingContext:
    """A cwltool LoadingContext that loads ``doc`` (minus ``schemas``) from memory only."""
    text = json.dumps({k: v for k, v in doc.items() if k not in ("schemas", "$schemas")})
    context = LoadingContext()
    context.fetcher_constructor = lambda cache, session: _PackageFetcher(cache, session, text=text)
    context.loader = default_loader(context.fetcher_constructor)
    context.skip_schemas = True  # belt and braces: never download $schemas ontologies
    context.construct_tool_object = default_make_tool
    return context


@contextmanager
def _cwltool_errors() -> Iterator[None]:
    """Translate what cwltool raises on a user's document into ``InvalidPackage``."""
    try:
        yield
    except _LOAD_ERRORS as exc:
        raise InvalidPackage(_validation_detail(exc)) from exc


def _validation_detail(exc: Exception) -> str:
    """The validator's message without file:line:col prefixes (they point into our
    re-serialised JSON, not the user's text) or the internal base URI."""
    if isinstance(exc, SchemaSaladException):
        lines = _message_lines(exc, 0)
    elif isinstance(exc, WorkflowException):
        lines = str(exc).splitlines()
    else:
        lines = [f"cwltool cannot read its structure ({type(exc).__name__}: {exc})"]
    text = _SOURCE_LOCATION.sub("", "\n".join(lines))
    for base in (_BASE_URI, relname(_BASE_URI)):
        text = text.replace(base, "")
    detail = f"The CWL document is not valid:\n{text.strip()}"
    return detail if len(detail) <= _MAX_DETAIL else detail[: _MAX_DETAIL - 3] + "..."


def _message_lines(exc: SchemaSaladException, level: int) -> list[str]:
    message = exc.message if exc.children else (exc.detailed_message or exc.message)
    lines = []
    if message:
        bullet = f"{exc.bullet} " if exc.bullet else ""
        lines.append(f"{'  ' * level}{bullet}{message}")
        level += 1
    for child in exc.children:
        lines.extend(_message_lines(child, level))
    return lines
