"""A CWL document: parse it, choose its process, validate it with cwltool, pack it.

Used by the gateway at deploy time and by the flow before it hands a workflow to a
backend (see :mod:`cwlpkg` for the whole sequence). Every error a user can fix is
raised as ``InvalidPackage`` with a message meant for them.

No network, no local files: cwltool loads the package through a fetcher that
serves only the package itself (``_PackageFetcher``), so ``$import``, ``$include``
or ``run:`` pointing anywhere else is refused (a package must be self-contained,
as OGC Application Packages are: one file, processes in ``$graph``). Schemas a package
``$import``s from http(s) URLs are written into it at deploy, before it gets here
(:mod:`cwlpkg.imports`). The
``schemas:`` / ``$schemas:`` entries (remote RDF ontologies, e.g. schema.org's
``schemaorg-current-http.rdf`` in every EOEPCA package) are dropped before loading:
cwltool would download them to reason about ``format`` IRIs, and ``schemas:`` (as the
OGC best practice spells it) is not a CWL field, so a single-process document
carrying it fails strict validation.
"""

from __future__ import annotations

import json
import re
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
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from schema_salad.exceptions import SchemaSaladException, ValidationException
from schema_salad.fetcher import DefaultFetcher
from schema_salad.sourceline import relname
from schema_salad.utils import yaml_no_ts

from core.exceptions import InvalidPackage
from cwlpkg import _structure

__all__ = [
    "entrypoint",
    "pack",
    "parse_document",
    "parse_yaml",
    "select_workflow",
    "step_count",
    "validate_document",
    "workflow_ids",
]

_BASE_URI = "file:///package.cwl"
_SUPPORTED_VERSIONS = ("v1.0", "v1.1", "v1.2")
_MAX_NODES = 500_000  # values in one parsed package; real ones have a few thousand
_MAX_DETAIL = 2000  # characters of a validator message kept in an error detail
# "path/package.cwl:12:5: " at the start of a cwltool message line.
_SOURCE_LOCATION = re.compile(r"^\S+:\d+:\d+: ?", re.MULTILINE)
# "(140632207158336) (file:///package.cwl) " before some schema-salad lines: an object id
# of the validating process and the internal base URI.
_SALAD_ORIGIN = re.compile(r"\(\d+\) \([^)]*\) ")
_TOOL_CLASSES = ("CommandLineTool", "ExpressionTool")  # deployable without a Workflow
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


# ---------------------------------------------------------------------------
# Parsing and selecting


def parse_document(text: str | bytes, *, base_uri: str = _BASE_URI) -> dict[str, Any]:
    """Parse a CWL document written as YAML (1.2, as CWL is) or JSON into a plain dict.

    ``base_uri`` names the document in error messages (e.g. the deploy ``href``).
    Raises ``InvalidPackage`` for text that is not UTF-8, not YAML/JSON (with the
    line and column of the problem) or not a mapping.
    """
    loaded = parse_yaml(text, base_uri=base_uri)
    if not isinstance(loaded, dict):
        raise InvalidPackage(
            f"{base_uri}: a CWL document must be a mapping (a process, or `$graph` with "
            f"processes), not {type(loaded).__name__}"
        )
    return loaded


def parse_yaml(text: str | bytes, *, base_uri: str = _BASE_URI) -> Any:
    """Parse YAML 1.2 or JSON text (a package, or a schema it imports) into plain values.

    Raises ``InvalidPackage`` naming ``base_uri`` as :func:`parse_document` does.
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
    try:
        return _plain(loaded)
    except TypeError as exc:
        raise InvalidPackage(f"{base_uri}: {exc} (custom YAML tags are not allowed)") from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidPackage(f"{base_uri}: {exc or 'the package is nested too deeply'}") from exc


def workflow_ids(doc: dict[str, Any]) -> list[str]:
    """Short ids (no ``#``) of the top-level ``class: Workflow`` processes, in order."""
    return [
        _structure.fragment(process["id"])
        for process in _structure.processes(doc)
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
    processes = _structure.processes(doc)
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
    ids = [_structure.fragment(p["id"]) for p in candidates]
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
    processes = _structure.processes(doc)
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
    _structure.find_process(doc, workflow_id)
    with _cwltool_errors():
        packed = _plain(cwltool_pack(_loading_context(doc), f"{_BASE_URI}#{workflow_id}"))
    for item in (packed, *packed["$graph"]):
        item.pop("$schemas", None)
    return packed


def entrypoint(packed: dict[str, Any]) -> str:
    """The URI fragment (without ``#``) of the process to run in a ``pack`` result."""
    for process in packed.get("$graph", []):
        if _structure.fragment(process.get("id", "")) == "main":
            return "main"
    raise InvalidPackage("Not a packed CWL document: its `$graph` has no process `#main`")


def step_count(doc: dict[str, Any], workflow_id: str) -> int:
    """Steps of the workflow ``workflow_id`` (0 for a single tool); used for progress."""
    steps = _structure.find_process(doc, workflow_id).get("steps") or []
    return len(steps)


# ---------------------------------------------------------------------------
# Helpers: plain values, the run graph, cwltool loading


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


def _run_refs(process: Mapping[str, Any]) -> set[str]:
    """Ids of the processes the steps of ``process`` run (inline processes searched too)."""
    refs: set[str] = set()
    steps = process.get("steps") or []
    for step in steps.values() if isinstance(steps, Mapping) else steps:
        run = step.get("run") if isinstance(step, Mapping) else None
        if isinstance(run, str):
            refs.add(_structure.fragment(run))
        elif isinstance(run, Mapping):
            refs |= _run_refs(run)
    return refs


def _roots(processes: list[dict[str, Any]]) -> list[str]:
    """Ids of the processes that no step of another process runs."""
    referenced = set().union(*(_run_refs(p) for p in processes))
    ids = [_structure.fragment(p["id"]) for p in processes if isinstance(p.get("id"), str)]
    return [i for i in ids if i not in referenced]


def _cycle(processes: list[dict[str, Any]]) -> list[str] | None:
    """A cycle of ``run:`` references between processes (``[a, b, a]``), if any."""
    edges = {
        _structure.fragment(p["id"]): _run_refs(p)
        for p in processes
        if isinstance(p.get("id"), str)
    }
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
    text = _SALAD_ORIGIN.sub("", _SOURCE_LOCATION.sub("", "\n".join(lines)))
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
