"""A job's results as the execute request asked for them (Part 1 1.0, clause 7.11).

``response: document`` (what clients such as OWSLib ask for): the results document, a
member per output. ``response: raw`` (the default of Part 1 1.0, ``execute.yaml``, and so
of an execute request that names no ``response``):

* one output by value: the value itself — a string as ``text/plain``, other JSON values
  as ``application/json``, a file (a link ``{href, type}``) as that link's target is
  not copied: its href comes as a ``Link`` header and the link as the JSON body;
* several outputs: ``multipart/related``, a part per output with ``Content-ID: <id>``;
  a file output by reference is a ``message/external-body`` part naming its URL;
* every output by reference (``transmissionMode: reference``): ``204`` and a ``Link``
  header per output.

Optional outputs the job did not produce (null) are left out in every form.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from core.ogc import REL

__all__ = ["present", "render_results"]


def present(results: dict[str, Any], outputs: dict[str, Any] | None) -> dict[str, Any]:
    """The outputs of ``results`` the request selected (all when ``outputs`` is empty),
    without those not produced."""
    return {
        key: value
        for key, value in results.items()
        if value is not None and (not outputs or key in outputs)
    }


def _is_link(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("href"), str)


def _by_reference(output_id: str, value: Any, outputs: dict[str, Any]) -> bool:
    mode = (outputs.get(output_id) or {}).get("transmissionMode")
    return _is_link(value) and mode == "reference"


def _link_header(output_id: str, value: dict[str, Any]) -> str:
    # A published STAC root's `type` is "Catalog" or "Collection", not a media type.
    kind = value.get("type")
    media = f'; type="{kind}"' if isinstance(kind, str) and "/" in kind else ""
    return f'<{value["href"]}>; rel="{REL}/results"; title="{output_id}"{media}'


def _part_body(value: Any) -> tuple[str, bytes]:
    if isinstance(value, str):
        return "text/plain; charset=utf-8", value.encode()
    return "application/json", json.dumps(value).encode()


def render_results(
    results: dict[str, Any],
    *,
    response: str,
    outputs: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The HTTP response of ``results`` for ``response`` (``raw`` or ``document``) and the
    request's ``outputs`` selection; ``headers`` are added (e.g. the job's monitor link)."""
    outputs = outputs or {}
    values = present(results, outputs)
    headers = dict(headers or {})
    if response != "raw":
        return JSONResponse(values, headers=headers)
    references = [k for k, v in values.items() if _by_reference(k, v, outputs)]
    links = [headers.pop("Link")] if "Link" in headers else []
    if values and len(references) == len(values):
        links += [_link_header(k, values[k]) for k in references]
        return Response(status_code=204, headers={**headers, "Link": ", ".join(links)})
    if len(values) == 1:
        ((output_id, value),) = values.items()
        if _is_link(value):
            links.append(_link_header(output_id, value))
        media_type, body = _part_body(value)
        if links:
            headers["Link"] = ", ".join(links)
        return Response(body, media_type=media_type, headers=headers)
    boundary = f"ogc-results-{uuid.uuid4().hex}"
    parts = []
    for output_id, value in values.items():
        if output_id in references:
            media_type = f'message/external-body; access-type=URL; URL="{value["href"]}"'
            body = b""
        else:
            media_type, body = _part_body(value)
        head = f"--{boundary}\r\nContent-ID: <{output_id}>\r\nContent-Type: {media_type}\r\n\r\n"
        parts.append(head.encode() + body + b"\r\n")
    payload = b"".join(parts) + f"--{boundary}--\r\n".encode()
    if links:
        headers["Link"] = ", ".join(links)
    return Response(
        payload,
        media_type=f'multipart/related; boundary="{boundary}"; type="application/json"',
        headers=headers,
    )
