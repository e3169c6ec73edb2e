"""Validate a response body against the schema ``/api`` declares for that operation.

The schema comes from the server's own OpenAPI 3.0 document, resolved with its
``components``, and is applied with the OpenAPI 3.0 schema dialect (``nullable``...).
"""

from __future__ import annotations

import functools
from typing import Any

import requests
from openapi_schema_validator import OAS30Validator

__all__ = ["validate_response"]


@functools.cache
def _document(api_url: str) -> dict[str, Any]:
    response = requests.get(api_url, timeout=30)
    response.raise_for_status()
    return response.json()


def validate_response(
    api_url: str,
    path: str,
    method: str,
    status: int,
    body: Any,
    media_type: str = "application/json",
) -> None:
    """Check ``body`` against ``/api``'s schema for ``method path`` answering ``status``.

    ``api_url`` is the document's URL, ``path`` a path template as ``/api`` spells it
    (e.g. ``/{user}/ogc-api/jobs/{jobId}/logs``). Raises ``AssertionError`` listing every
    violation, or when the operation or its response schema is not declared.
    """
    document = _document(api_url)
    operation = document["paths"].get(path, {}).get(method.lower())
    assert operation, f"{method} {path} is not declared in /api"
    responses = operation.get("responses", {})
    response = responses.get(str(status)) or responses.get("default")
    assert response, f"{method} {path} declares no {status} response"
    schema = response.get("content", {}).get(media_type, {}).get("schema")
    assert schema, f"{method} {path} {status} declares no {media_type} schema"
    root = {**schema, "components": document.get("components", {})}
    errors = sorted(OAS30Validator(root).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors][:5]
