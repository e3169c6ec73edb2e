"""The API definition as OpenAPI 3.0 (conformance class ``oas30``).

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12: ``{"type": "null"}`` in ``anyOf``,
``const``, ``examples``); this turns it into the 3.0 dialect and declares the ``{user}``
path parameter, which the routes read through a dependency rather than a signature.
It also declares what every error really is: an OGC exception (RFC 7807), as the
``default`` response of every operation (the WPS's: an OWS ExceptionReport), in place of
FastAPI's 422 (never sent: request validation errors are 400). With an OIDC issuer, the
bearer scheme is declared too.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

__all__ = ["openapi_30"]

OPENAPI_VERSION = "3.0.3"
# OGC API - Processes Part 1 exception.yaml.
_EXCEPTION_SCHEMA = {
    "title": "Exception Schema",
    "description": "JSON schema for exceptions based on RFC 7807",
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_ERROR_RESPONSE = {
    "description": "An error, as an OGC exception",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Exception"}}},
}
_USER_PARAMETER = {
    "name": "user",
    "in": "path",
    "required": True,
    "description": "The user whose processes and jobs this tree serves.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$"},
}


def _schema_30(schema: Any) -> Any:
    """A JSON Schema 2020-12 object rewritten in OpenAPI 3.0's schema dialect."""
    if isinstance(schema, list):
        return [_schema_30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: value if key in ("enum", "default", "example") else _schema_30(value)
        for key, value in schema.items()
    }
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # 2020-12 puts the bound in exclusiveMinimum; 3.0 wants minimum + a boolean.
        value = out.get(exclusive)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[bound] = value
            out[exclusive] = True
    if "examples" in out and isinstance(out["examples"], list):
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if not isinstance(options, list) or {"type": "null"} not in options:
            continue
        rest = [o for o in options if o != {"type": "null"}]
        del out[key]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out.update(rest[0])
        elif len(rest) == 1:
            out["allOf"] = rest  # siblings of a bare $ref are ignored in 3.0
        else:
            out[key] = rest
        out["nullable"] = True
    return out


def _public(path: str) -> bool:
    """Whether ``path`` is served without a token (landing page, conformance)."""
    return path.removeprefix("/{user}").removeprefix("/ogc-api") in ("/", "", "/conformance")


def openapi_30(app: FastAPI) -> dict[str, Any]:
    """This server's API definition in OpenAPI 3.0 (built once, then cached)."""
    cached = getattr(app.state, "openapi_30", None)
    if cached is not None:
        return cached
    document = copy.deepcopy(app.openapi())
    document["openapi"] = OPENAPI_VERSION
    components = document.setdefault("components", {})
    schemas = {
        name: _schema_30(schema)
        for name, schema in components.get("schemas", {}).items()
        if name not in ("HTTPValidationError", "ValidationError")
    }
    components["schemas"] = {**schemas, "Exception": _EXCEPTION_SCHEMA}
    if getattr(app.state, "verifier", None) is not None:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    parameter["schema"] = _schema_30(parameter["schema"])
            for part in [operation.get("requestBody", {})] + list(
                operation.get("responses", {}).values()
            ):
                for media in part.get("content", {}).values():
                    if "schema" in media:
                        media["schema"] = _schema_30(media["schema"])
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            # The WPS declares its own (an ExceptionReport); every other error is JSON.
            responses.setdefault("default", _ERROR_RESPONSE)
            if "bearer" in components.get("securitySchemes", {}) and not _public(path):
                operation["security"] = [{"bearer": []}]
            if path.startswith("/{user}/"):
                operation["parameters"] = [
                    dict(_USER_PARAMETER),
                    *operation.get("parameters", []),
                ]
    app.state.openapi_30 = document
    return document
