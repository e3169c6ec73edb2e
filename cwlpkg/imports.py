"""Remote schema imports of a package: find them, and write what they import into it.

Application packages built on eoap/schemas declare shared types by URL::

    - class: SchemaDefRequirement
      types:
      - $import: https://raw.githubusercontent.com/eoap/schemas/main/ogc.yaml
    inputs:
      aoi: {type: "https://raw.githubusercontent.com/eoap/schemas/main/ogc.yaml#BBox"}

A stored package must stay self-contained (a runner, possibly on another site, reads it
with no network, and the URL's content may change after the deploy), so the engine
fetches each imported document once, at deploy, through its outbound guard (the caller
does; this module does no I/O) and :func:`inline_imports` writes it in place of its
``$import``, as schema-salad would splice it, under the names it would have had there:
the type ``BBox`` of ``…/ogc.yaml`` is named ``…/ogc.yaml#BBox`` in the package, so the
package's references to it stay as written. Only ``$import`` of absolute ``http(s)``
URLs is resolved; anything else keeps being refused as "outside the package".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urldefrag, urljoin

__all__ = ["MAX_IMPORTS", "inline_imports", "remote_imports"]

MAX_IMPORTS = 20
"""Documents one package may import, transitively (eoap packages import two)."""

# Type names an imported schema uses without defining them (CWL's and salad's own).
_BUILTIN_TYPES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "string", "File", "Directory", "Any"}
    | {"stdin", "stdout", "stderr", "array", "record", "enum", "map"}
)
_TYPE_KEYS = ("type", "items", "values")


def remote_imports(node: Any, base: str | None = None) -> list[str]:
    """The absolute ``http(s)`` URLs of every ``$import`` in ``node``, once each, in
    document order (fragments dropped). Relative ones are resolved against ``base`` (the
    URL of an imported document), else ignored."""
    found: list[str] = []
    _collect(node, base, found)
    return found


def inline_imports(doc: dict[str, Any], documents: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with every ``$import`` of a URL in ``documents`` (URL -> parsed YAML/JSON)
    replaced by that document, its type names and references made absolute under the
    URL; a list imported into a list is spliced into it. Transitive imports are resolved
    too; ``$import`` of URLs not in ``documents`` stay as they are."""
    return _inline(doc, None, documents, ())


def _is_remote(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _import_url(node: Mapping[str, Any], base: str | None) -> str | None:
    ref = node.get("$import")
    if not isinstance(ref, str):
        return None
    url = urldefrag(urljoin(base, ref) if base else ref).url
    return url if _is_remote(url) else None


def _collect(node: Any, base: str | None, found: list[str]) -> None:
    if isinstance(node, Mapping):
        url = _import_url(node, base)
        if url is not None:
            if url not in found:
                found.append(url)
            return
        for value in node.values():
            _collect(value, base, found)
    elif isinstance(node, list):
        for item in node:
            _collect(item, base, found)


def _inline(
    node: Any, base: str | None, documents: Mapping[str, Any], seen: tuple[str, ...]
) -> Any:
    if isinstance(node, Mapping):
        url = _import_url(node, base)
        if url is not None and url in documents and url not in seen:
            imported = _absolute_names(documents[url], url)
            return _inline(imported, url, documents, (*seen, url))
        return {key: _inline(value, base, documents, seen) for key, value in node.items()}
    if isinstance(node, list):
        items: list[Any] = []
        for item in node:
            value = _inline(item, base, documents, seen)
            spliced = isinstance(item, Mapping) and "$import" in item and isinstance(value, list)
            items.extend(value if spliced else [value])
        return items
    return node


def _absolute_names(node: Any, url: str) -> Any:
    """Names of the types defined in an imported document, and its references to them,
    as absolute IRIs under ``url`` (``BBox`` -> ``url#BBox``); field names, enum symbols
    and built-in types stay as they are (salad scopes them under the absolute name)."""
    if isinstance(node, list):
        return [_absolute_names(item, url) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "name" and node.get("type") in ("record", "enum") and isinstance(value, str):
            out[key] = _absolute(value, url)
        elif key in _TYPE_KEYS:
            out[key] = _type_ref(value, url)
        elif key == "$import":
            out[key] = value
        else:
            out[key] = _absolute_names(value, url)
    return out


def _type_ref(value: Any, url: str) -> Any:
    if isinstance(value, str):
        stem, suffix = value, ""
        while stem.endswith(("?", "[]")):
            cut = 1 if stem.endswith("?") else 2
            stem, suffix = stem[:-cut], stem[-cut:] + suffix
        if stem in _BUILTIN_TYPES:
            return value
        return _absolute(stem, url) + suffix
    if isinstance(value, list):
        return [_type_ref(item, url) for item in value]
    return _absolute_names(value, url)


def _absolute(name: str, url: str) -> str:
    """``name`` as salad resolves it in the document at ``url``: ``BBox`` and ``#BBox``
    -> ``url#BBox``; ``other.yaml#T`` -> that document's ``T``; IRIs stay."""
    document, _, _ = name.partition("#")
    if ":" in document:  # already an IRI (http://…, file:…)
        return name
    if document and "#" in name:
        return urljoin(url, name)
    return f"{url}#{name.lstrip('#')}"
