"""Fetch the schemas a deployed package ``$import``s, so that it is stored self-contained.

eoap application packages (pattern 12 and its kind) declare shared types with
``SchemaDefRequirement: {types: [{$import: https://…/eoap/schemas/main/ogc.yaml}]}``.
At deploy each such URL is fetched once through the engine's outbound guard (as a deploy
``href`` is, with the same size and time limits), parsed, and written into the package
by :func:`cwlpkg.inline_imports`; the stored package imports nothing, and the runners
never reach the network for its types. What a package imports is fetched transitively,
at most :data:`cwlpkg.imports.MAX_IMPORTS` documents.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

import cwlpkg as cwl
from core import http
from core.exceptions import InvalidPackage, PayloadTooLarge
from core.settings import Settings
from cwlpkg.imports import MAX_IMPORTS

__all__ = ["resolve_imports"]


async def resolve_imports(cwl_source: str | dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``cwl_source`` (CWL text or parsed), parsed, with its remote ``$import``s written
    in. Raises ``InvalidPackage`` (``PayloadTooLarge``) naming the import that could not be
    fetched or parsed, or the parse error of the package itself."""
    doc = (
        cwl_source
        if isinstance(cwl_source, dict)
        else await run_in_threadpool(cwl.parse_document, cwl_source)
    )
    pending = cwl.remote_imports(doc)
    if not pending:
        return doc
    documents: dict[str, Any] = {}
    while pending:
        url = pending.pop(0)
        if url in documents:
            continue
        if len(documents) == MAX_IMPORTS:
            raise InvalidPackage(
                f"the package imports more than {MAX_IMPORTS} schema documents; "
                "write the types it needs into its SchemaDefRequirement"
            )
        text = await _fetch(url, settings)
        documents[url] = await run_in_threadpool(cwl.parse_yaml, text, base_uri=url)
        pending += cwl.remote_imports(documents[url], url)
    return cwl.inline_imports(doc, documents)


async def _fetch(url: str, settings: Settings) -> str:
    limits = settings.gateway
    try:
        body = await http.fetch(
            url,
            guard=http.Guard.from_settings(settings),
            max_bytes=limits.package_fetch_max_bytes,
            timeout_s=limits.package_fetch_timeout_s,
        )
    except http.TooLarge as exc:
        raise PayloadTooLarge(
            f"the schema the package imports from {url} is larger than {exc.max_bytes} bytes"
        ) from exc
    except http.BadStatus as exc:
        raise InvalidPackage(
            f"the package imports {url}, which answered HTTP {exc.status_code}"
        ) from exc
    except http.FetchError as exc:
        raise InvalidPackage(
            f"cannot fetch the schema the package imports from {url}: {exc}"
        ) from exc
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise InvalidPackage(f"the schema the package imports from {url} is not UTF-8") from exc
