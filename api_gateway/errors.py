"""The one place errors become HTTP responses: OGC exception JSON for every 4xx/5xx, and
OWS ExceptionReports on the WPS's paths (``api_gateway/wps/exceptions.py``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api_gateway.wps.exceptions import exception_response, is_wps_path
from core.exceptions import EngineError, InvalidInput, TooManyJobs, Unauthorized
from core.secrets import Redactor

__all__ = ["install_error_handlers", "ogc_exception"]

logger = logging.getLogger("oapip.gateway")

_GENERIC = {
    400: ("invalid-parameter", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def ogc_exception(
    status: int, type_uri: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    """An OGC exception response, served as ``application/json``."""
    body = {"type": type_uri, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/json")


async def _engine_error(request: Request, exc: EngineError) -> Response:
    extra: dict[str, Any] = {"instance": request.url.path}
    redact = getattr(request.app.state, "redact", Redactor())
    if isinstance(exc, InvalidInput) and exc.errors:
        extra["errors"] = {k: redact(v) for k, v in exc.errors.items()}
    detail = redact(exc.detail)
    if exc.status >= 500 and exc.status != 503:
        logger.error("%s %s failed: %s", request.method, request.url.path, detail)
    if is_wps_path(request.url.path):
        response = exception_response(request, exc, detail)
    else:
        response = ogc_exception(exc.status, exc.type_uri, exc.title, detail, **extra)
    if isinstance(exc, Unauthorized):
        # RFC 6750: a missing token gets the bare challenge, a bad one says why.
        challenge = 'Bearer realm="ogc-api"'
        if exc.error != "missing_token":
            challenge += f', error="{exc.error}"'
        response.headers["WWW-Authenticate"] = challenge
    if isinstance(exc, TooManyJobs):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {error.get('msg')}")
    if is_wps_path(request.url.path):
        return exception_response(request, exc, "; ".join(problems), status=400)
    return ogc_exception(
        400,
        "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/invalid-parameter",
        "Invalid parameter",
        "; ".join(problems) or "the request is not valid",
        instance=request.url.path,
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    name, title = _GENERIC.get(exc.status_code, ("server-error", "Error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}; the API is described at /api"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    if is_wps_path(request.url.path):
        return exception_response(request, exc, detail, status=exc.status_code)
    response = ogc_exception(
        exc.status_code,
        f"http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/{name}",
        title,
        detail,
        instance=request.url.path,
    )
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _too_deep(request: Request, exc: RecursionError) -> Response:
    # JSON nested thousands of levels deep, in any body: the client's mistake or attack.
    detail = "the request body is nested too deeply"
    if is_wps_path(request.url.path):
        return exception_response(request, exc, detail, status=400)
    return ogc_exception(
        400,
        "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/invalid-parameter",
        "Invalid parameter",
        detail,
        instance=request.url.path,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    detail = "the server failed to handle this request; it has been logged"
    if is_wps_path(request.url.path):
        return exception_response(request, exc, detail)
    return ogc_exception(
        500,
        "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/server-error",
        "Server error",
        detail,
        instance=request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(EngineError, _engine_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RecursionError, _too_deep)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
