"""WPS errors as OWS ExceptionReports: which code, which HTTP status, which version.

``api_gateway/errors.py`` stays the one place errors become HTTP: on a WPS path it calls
:func:`exception_response` instead of writing OGC exception JSON. The engine's errors map
to OWS/WPS codes here:

=====================================  ==============================  ========================
error                                  code (1.0.0 / 2.0)              HTTP
=====================================  ==============================  ========================
``OwsException``                       its own code                    400
``NoSuchProcess``                      InvalidParameterValue /         400
                                       NoSuchProcess
``NoSuchJob`` (also another user's)    NoSuchJob                       400
``ResultNotReady``                     ResultNotReady                  400
``JobFailed``                          NoApplicableCode                400
``InvalidInput``                       InvalidParameterValue /         400
                                       WrongInputData
other ``InvalidParameter``             InvalidParameterValue           400
``Unauthorized`` / ``Forbidden``       NoApplicableCode                401 / 403
``PayloadTooLarge``                    FileSizeExceeded / SizeExceeded 413
``ServiceUnavailable``                 ServerBusy / NoApplicableCode   503
anything else                          NoApplicableCode                500
=====================================  ==============================  ========================

Every code a client can cause is a 400 (OWS 2.0 would answer OperationNotSupported with
501, but a request the service does not offer is the client's, not the server's, fault);
OWSLib turns a 400 into a ``ServiceException`` carrying the report.
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import Response

from api_gateway.wps.xmlio import OWS2, OWS11, Xml, xml_response
from core.exceptions import (
    EngineError,
    Forbidden,
    InvalidInput,
    InvalidParameter,
    JobFailed,
    NoSuchJob,
    NoSuchProcess,
    OwsException,
    PayloadTooLarge,
    ResultNotReady,
    ServiceUnavailable,
    Unauthorized,
)

__all__ = [
    "V1",
    "V2",
    "exception_report",
    "exception_response",
    "is_wps_path",
    "report_version",
]

V1, V2 = "1.0.0", "2.0.0"

_WPS_PATH = re.compile(r"^(/[^/]+)?/wps(/jobs/[^/]+)?/?$")


def is_wps_path(path: str) -> bool:
    """Whether ``path`` is one the WPS serves (``/wps``, ``/{user}/wps``, their
    ``/jobs/{jobId}``)."""
    return bool(_WPS_PATH.match(path))


def report_version(request: Request) -> str:
    """The WPS version a report answers: the request's, once known; else 2.0.0 when the
    query asks for it, else 1.0.0."""
    known = getattr(request.state, "wps_version", None)
    if known:
        return known
    query = {k.lower(): v for k, v in request.query_params.items()}
    asked = query.get("version") or query.get("acceptversions") or ""
    return V2 if asked.split(",")[0].strip() == V2 else V1


def exception_report(version: str, code: str, text: str, locator: str | None = None):
    """An ``ows:ExceptionReport`` element: OWS 1.1 for WPS 1.0.0, OWS 2.0 for WPS 2.0."""
    xml = Xml({"ows": OWS2 if version == V2 else OWS11})
    report = xml.root(
        "ows:ExceptionReport",
        {"version": version, "xml:lang": "en" if version == V2 else "en-US"},
    )
    exception = xml.add(report, "ows:Exception", attrs={"exceptionCode": code, "locator": locator})
    xml.add(exception, "ows:ExceptionText", text)
    return report


def _code(exc: Exception, version: str) -> tuple[str, int, str | None]:
    if isinstance(exc, OwsException):
        return exc.code, 400, exc.locator
    if isinstance(exc, NoSuchProcess):
        return ("NoSuchProcess" if version == V2 else "InvalidParameterValue"), 400, "identifier"
    if isinstance(exc, NoSuchJob):
        return "NoSuchJob", 400, "jobId"
    if isinstance(exc, ResultNotReady):
        return "ResultNotReady", 400, "jobId"
    if isinstance(exc, JobFailed):
        return "NoApplicableCode", 400, None
    if isinstance(exc, InvalidInput):
        locator = next(iter(exc.errors), None)
        return ("WrongInputData" if version == V2 else "InvalidParameterValue"), 400, locator
    if isinstance(exc, InvalidParameter):
        return "InvalidParameterValue", 400, None
    if isinstance(exc, Unauthorized | Forbidden):
        return "NoApplicableCode", exc.status, None
    if isinstance(exc, PayloadTooLarge):
        return ("SizeExceeded" if version == V2 else "FileSizeExceeded"), 413, None
    if isinstance(exc, ServiceUnavailable):
        return ("NoApplicableCode" if version == V2 else "ServerBusy"), 503, None
    if isinstance(exc, EngineError):
        return "NoApplicableCode", exc.status, None
    return "NoApplicableCode", 500, None


def exception_response(
    request: Request, exc: Exception, text: str, *, status: int | None = None
) -> Response:
    """The ExceptionReport answering ``exc`` (``text`` is its message, already masked);
    ``status`` overrides the HTTP status (errors of the HTTP layer: 404, 405)."""
    version = report_version(request)
    code, default_status, locator = _code(exc, version)
    if status == 405:
        code = "OperationNotSupported"
    return xml_response(exception_report(version, code, text, locator), status or default_status)
