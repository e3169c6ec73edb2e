"""The WPS endpoint: ``GET`` (KVP) and ``POST`` (XML) on ``/wps`` and ``/{user}/wps``, and
WPS 1.0.0's statusLocation ``…/wps/jobs/{jobId}``.

The user is found as for the OGC API (``api_gateway/deps.py``: the path, or the bearer
token with OIDC); errors become ExceptionReports in ``api_gateway/errors.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from lxml import etree

from api_gateway.deps import JobsDep, ProcessesDep, SettingsDep, UserDep
from api_gateway.wps import v1, v2
from api_gateway.wps.exceptions import V1, V2
from api_gateway.wps.request import from_kvp
from api_gateway.wps.service import WpsContext, WpsService
from api_gateway.wps.xmlio import WPS1, WPS2, XML_MEDIA_TYPE, local_name, parse_request
from core.exceptions import OwsException

__all__ = ["router"]

router = APIRouter(tags=["WPS"])


def get_wps(
    request: Request, user: UserDep, settings: SettingsDep, processes: ProcessesDep, jobs: JobsDep
) -> WpsService:
    """The WPS of the request's user, with the URLs its documents link to."""
    root = (settings.public_url or str(request.base_url)).rstrip("/")
    prefix = f"/{user}" if "user" in request.path_params else ""
    ctx = WpsContext(
        user=user,
        url=f"{root}{prefix}/wps",
        site=f"{root}{prefix}/ogc-api/",
        jobs_url=f"{root}{prefix}/ogc-api/jobs",
        sync_timeout_s=settings.gateway.sync_execute_timeout_s,
    )
    return WpsService(ctx, processes, jobs)


WpsDep = Annotated[WpsService, Depends(get_wps)]

_XML = {"schema": {"type": "string"}}
_REPORT = {"description": "an OWS ExceptionReport", "content": {XML_MEDIA_TYPE: _XML}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the WPS response document", "content": {XML_MEDIA_TYPE: _XML}},
    400: _REPORT,
    401: _REPORT,
    403: _REPORT,
    413: _REPORT,
    "default": _REPORT,
}
_KVP = [
    ("service", True, "`WPS`"),
    (
        "request",
        True,
        "GetCapabilities, DescribeProcess, Execute (1.0.0), GetStatus, GetResult, Dismiss (2.0)",
    ),
    ("version", False, "`1.0.0` or `2.0.0` (all but GetCapabilities)"),
    ("AcceptVersions", False, "GetCapabilities: versions in order of preference"),
    ("identifier", False, "DescribeProcess: process ids, comma-separated, or ALL; Execute"),
    ("DataInputs", False, "1.0.0 Execute: `id=value;id=@xlink:href=url@mimeType=type`"),
    ("ResponseDocument", False, "1.0.0 Execute: `output@asReference=true;output`"),
    ("RawDataOutput", False, "1.0.0 Execute: the one output to answer as it is"),
    ("storeExecuteResponse", False, "1.0.0 Execute: `true` runs it asynchronously"),
    ("status", False, "1.0.0 Execute: `true` keeps the statusLocation document current"),
    ("lineage", False, "1.0.0 Execute"),
    ("JobID", False, "2.0 GetStatus, GetResult, Dismiss"),
]
_GET = {
    "parameters": [
        {
            "name": name,
            "in": "query",
            "required": required,
            "description": description,
            "schema": {"type": "string"},
        }
        for name, required, description in _KVP
    ]
}
_POST = {
    "requestBody": {
        "required": True,
        "description": "a WPS 1.0.0 (GetCapabilities, DescribeProcess, Execute) or 2.0 "
        "(also GetStatus, GetResult, Dismiss) request document",
        "content": {XML_MEDIA_TYPE: _XML, "application/xml": _XML},
    }
}


@router.get(
    "",
    summary="WPS 1.0.0 and 2.0, key-value pairs",
    response_class=Response,
    responses=_RESPONSES | {303: {"description": "a raw file output: where it is"}},
    openapi_extra=_GET,
)
async def get_wps_kvp(request: Request, wps: WpsDep) -> Response:
    wps_request = from_kvp(request.url.query)
    request.state.wps_version = wps_request.version
    return await wps.answer(wps_request)


@router.post(
    "",
    summary="WPS 1.0.0 and 2.0, XML",
    response_class=Response,
    responses=_RESPONSES | {303: {"description": "a raw file output: where it is"}},
    openapi_extra=_POST,
)
async def post_wps_xml(request: Request, wps: WpsDep) -> Response:
    root = parse_request(await request.body())
    namespace = etree.QName(root).namespace
    if namespace not in (WPS1, WPS2):
        raise OwsException(
            "OperationNotSupported",
            f"{local_name(root)[:100]} ({namespace}) is not a WPS 1.0.0 or 2.0 request",
            local_name(root)[:100],
        )
    request.state.wps_version = V2 if namespace == WPS2 else V1
    wps_request = (v2 if namespace == WPS2 else v1).parse(root)
    request.state.wps_version = wps_request.version
    return await wps.answer(wps_request)


@router.get(
    "/jobs/{jobId}",
    summary="WPS 1.0.0 statusLocation: the ExecuteResponse of a job as it stands",
    response_class=Response,
    responses=_RESPONSES,
)
async def get_wps_status_location(jobId: str, request: Request, wps: WpsDep) -> Response:
    request.state.wps_version = V1
    return await wps.status_location(jobId)
