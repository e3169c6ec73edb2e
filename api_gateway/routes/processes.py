"""Processes: list, describe, deploy, replace, undeploy, package, execute."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api_gateway.builtins import check_mutable, deploy_over_builtin, forget_user
from api_gateway.deps import ContextDep, JobsDep, ProcessesDep, SettingsDep
from api_gateway.models import ExecuteRequest, ProcessDescription, ProcessList, Results, StatusInfo
from api_gateway.packages import PACKAGE_MEDIA_TYPES, check_media_type, read_package
from api_gateway.results import render_results
from api_gateway.views import (
    process_description,
    process_list,
    process_summary,
    render,
    status_info,
)
from core.exceptions import InvalidParameter

router = APIRouter(tags=["Processes"])

_PACKAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media_type: {"schema": {"type": "object" if "json" in media_type else "string"}}
            for media_type in PACKAGE_MEDIA_TYPES
        },
    }
}
_EXECUTE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ExecuteRequest"}}
        },
    }
}


@router.get("/processes", response_model=ProcessList, summary="List the processes")
async def list_processes(
    ctx: ContextDep,
    processes: ProcessesDep,
    limit: int = Query(100, ge=1, le=10000, description="Processes per page."),
    offset: int = Query(0, ge=0, description="Processes to skip (paging)."),
):
    records = await processes.list_processes(ctx.user)
    page = records[offset : offset + limit]
    document = process_list(
        ctx, page, offset=offset, limit=limit, more=offset + limit < len(records)
    )
    return render(ctx, "processes.html", document)


@router.post(
    "/processes",
    status_code=201,
    summary="Deploy a process (Part 2)",
    openapi_extra=_PACKAGE_BODY,
    responses={201: {"description": "Process deployed"}},
)
async def deploy_process(
    request: Request,
    ctx: ContextDep,
    processes: ProcessesDep,
    settings: SettingsDep,
    w: str | None = Query(None, description="Id of the Workflow of a $graph to deploy."),
):
    package = await read_package(
        request.headers.get("content-type"), await request.body(), w, settings
    )
    state = request.app.state
    record = await deploy_over_builtin(state, processes, ctx.user, package)
    record = record or await processes.deploy(ctx.user, package)
    href = f"{ctx.base}/processes/{record.process_id}"
    return JSONResponse(process_summary(ctx, record), status_code=201, headers={"Location": href})


@router.get(
    "/processes/{processId}", response_model=ProcessDescription, summary="Describe a process"
)
async def describe_process(processId: str, ctx: ContextDep, processes: ProcessesDep):
    record = await processes.get_process(ctx.user, processId)
    return render(ctx, "process.html", process_description(ctx, record))


@router.put(
    "/processes/{processId}",
    status_code=204,
    summary="Replace a process (Part 2)",
    openapi_extra=_PACKAGE_BODY,
)
async def replace_process(
    processId: str,
    request: Request,
    ctx: ContextDep,
    processes: ProcessesDep,
    settings: SettingsDep,
    w: str | None = Query(None, description="Id of the Workflow of a $graph to deploy."),
):
    # Part 2: an unsupported media type is refused before the process is even looked up.
    check_media_type(request.headers.get("content-type"))
    check_mutable(request.app.state, await processes.get_process(ctx.user, processId))
    package = await read_package(
        request.headers.get("content-type"), await request.body(), w or processId, settings
    )
    await processes.replace(ctx.user, processId, package)
    return Response(status_code=204)


@router.delete("/processes/{processId}", status_code=204, summary="Undeploy a process (Part 2)")
async def undeploy_process(
    processId: str, request: Request, ctx: ContextDep, processes: ProcessesDep
):
    check_mutable(request.app.state, await processes.get_process(ctx.user, processId))
    await processes.undeploy(ctx.user, processId)
    forget_user(request.app.state, ctx.user)
    return Response(status_code=204)


@router.get("/processes/{processId}/package", summary="The process's application package")
async def get_package(processId: str, ctx: ContextDep, processes: ProcessesDep):
    workflow = await processes.package_source(ctx.user, processId)
    return JSONResponse(workflow, media_type="application/cwl+json")


def _execute_request(body: bytes) -> ExecuteRequest:
    if not body.strip():
        return ExecuteRequest()
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidParameter(f"the execute request is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidParameter('the execute request must be a JSON object like {"inputs": {...}}')
    if not isinstance(document.get("inputs", {}), dict):
        raise InvalidParameter('"inputs" must be an object mapping input ids to values')
    try:
        return ExecuteRequest.model_validate(document)
    except ValueError as exc:
        raise InvalidParameter(f"the execute request is not valid: {exc}") from exc


def _prefers_async(request: Request) -> bool:
    prefer = request.headers.get("prefer", "")
    return any(
        token.strip().lower() == "respond-async" for token in prefer.replace(";", ",").split(",")
    )


@router.post(
    "/processes/{processId}/execution",
    summary="Execute a process",
    openapi_extra=_EXECUTE_BODY,
    responses={
        200: {
            "model": Results,
            "description": "Results of a synchronous execution, as `response` asks: by "
            "default (`raw`) one output as its value, several as multipart/related; "
            "`document`: the results document",
        },
        201: {"model": StatusInfo, "description": "Job created (asynchronous execution)"},
    },
)
async def execute_process(
    processId: str, request: Request, ctx: ContextDep, jobs: JobsDep, settings: SettingsDep
):
    # Real clients send no Content-Type: the body is read as JSON whatever it says.
    execute = _execute_request(await request.body())
    subscriber = execute.subscriber.model_dump(exclude_none=True) if execute.subscriber else None
    respond_async = _prefers_async(request)
    record, results = await jobs.execute(
        ctx.user,
        processId,
        execute.inputs,
        execute.outputs,
        subscriber=subscriber,
        jobs_url=f"{ctx.base}/jobs",
        wait_s=None if respond_async else settings.gateway.sync_execute_timeout_s,
        response=execute.response,
    )
    location = f"{ctx.base}/jobs/{record.job_id}"
    if respond_async:
        return JSONResponse(
            status_info(ctx, record),
            status_code=201,
            headers={"Location": location, "Preference-Applied": "respond-async"},
        )
    if results is None:
        # Took longer than a synchronous request may wait: hand over the job instead.
        return JSONResponse(
            status_info(ctx, record), status_code=201, headers={"Location": location}
        )
    return render_results(
        results,
        response=execute.response,
        outputs=execute.outputs,
        headers={"Link": f'<{location}>; rel="monitor"'},
    )
