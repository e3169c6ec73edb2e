"""How a CWL document is laid out: its processes, their ids, parameters and named types.

Private to :mod:`cwlpkg`: the reading of a plain-dict document (as ``parse_document``
returns it) that loading, describing and building job orders share. A document is a
single process or a ``$graph`` of them; ids may be written ``file:///p.cwl#wf``,
``#wf`` or ``wf``; inputs, outputs and record fields may be written as a map or a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.exceptions import InvalidPackage

__all__ = [
    "FILE_TYPES",
    "find_process",
    "fragment",
    "params",
    "processes",
    "schema_defs",
    "short_name",
]

# CWL types whose values are files, and the CWL class of those values.
FILE_TYPES = {
    "File": "File",
    "Directory": "Directory",
    "stdin": "File",
    "stdout": "File",
    "stderr": "File",
}


def processes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The top-level processes: the ``$graph`` entries, or the document itself."""
    graph = doc.get("$graph")
    if graph is None:
        return [dict(doc)]
    return [p for p in graph if isinstance(p, dict)] if isinstance(graph, list) else []


def find_process(doc: Mapping[str, Any], process_id: str) -> dict[str, Any]:
    """The top-level process whose short id is ``process_id``; else ``InvalidPackage``."""
    for candidate in processes(doc):
        if fragment(str(candidate.get("id", ""))) == process_id:
            return candidate
    raise InvalidPackage(f"The package has no process {process_id!r}")


def fragment(ref: str) -> str:
    """``file:///p.cwl#wf`` / ``#wf`` / ``wf`` -> ``wf``."""
    return ref.rpartition("#")[2]


def short_name(ref: str) -> str:
    """A parameter's short name: ``#wf/step/fn`` / ``fn`` -> ``fn``."""
    return fragment(ref).rpartition("/")[2]


def params(section: Any, key: str = "id") -> list[tuple[str, dict[str, Any]]]:
    """Inputs/outputs/record fields, written as a map or a list, as (name, param)."""
    if isinstance(section, Mapping):
        return [
            (short_name(name), dict(value) if isinstance(value, Mapping) else {"type": value})
            for name, value in section.items()
        ]
    return [
        (short_name(str(p[key])), p) for p in section or [] if isinstance(p, Mapping) and key in p
    ]


def _requirement(process: Mapping[str, Any], cls: str) -> dict[str, Any] | None:
    requirements = process.get("requirements") or []
    if isinstance(requirements, Mapping):
        found = requirements.get(cls)
        return dict(found) if isinstance(found, Mapping) else None
    return next((r for r in requirements if isinstance(r, Mapping) and r.get("class") == cls), None)


def schema_defs(process: Mapping[str, Any]) -> dict[str, Any]:
    """Named types of the process's SchemaDefRequirement, by short name.

    Names are scoped by the process id once loaded (``Mode`` in process ``tool`` is
    referenced as ``#tool/Mode``), so both sides are reduced to the last segment.
    """
    requirement = _requirement(process, "SchemaDefRequirement") or {}
    return {
        short_name(t["name"]): t
        for t in requirement.get("types", [])
        if isinstance(t, Mapping) and isinstance(t.get("name"), str)
    }
