"""How long a job of an application package may run, from its CWL ``ToolTimeLimit``."""

from __future__ import annotations

from typing import Any

__all__ = ["job_time_limit_s"]


def job_time_limit_s(workflow: dict[str, Any], site_limit_s: int) -> int | None:
    """The longest a job of the packed CWL ``workflow`` may run, seconds: the site's
    limit (``site_limit_s``, 0 for none), lowered to the sum of the package's tools'
    ``ToolTimeLimit`` when every tool declares a fixed one (its own, or its workflow's).
    None: no limit at all.

    A tool's limit bounds each of its runs (cwltool enforces it per tool); their sum is
    what the job as a whole may take. A ``timelimit`` of 0 (none) or an expression
    leaves the site's limit.
    """
    nodes = list(_objects(workflow))
    tools = [n for n in nodes if n.get("class") == "CommandLineTool"]
    inherited = next(
        filter(None, (_declared(n) for n in nodes if n.get("class") == "Workflow")), None
    )
    limits = [_declared(tool) or inherited for tool in tools]
    site = site_limit_s or None
    if not tools or not all(limits):
        return site
    total = sum(limits)  # type: ignore[arg-type]  (none is None here)
    return min(total, site) if site else total


def _objects(node: Any) -> Any:
    """Every mapping in the document, depth first (``$graph`` entries, inline step runs)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def _declared(node: dict[str, Any]) -> int | None:
    """The fixed positive ``ToolTimeLimit`` a CWL object declares, in requirements or
    hints (list or map form)."""
    for key in ("requirements", "hints"):
        entries = node.get(key) or []
        if isinstance(entries, dict):
            entries = [{"class": k, **(v or {})} for k, v in entries.items()]
        for entry in entries:
            if isinstance(entry, dict) and entry.get("class") == "ToolTimeLimit":
                value = entry.get("timelimit")
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return None
