"""The gateway's app factory: routers under ``/ogc-api`` and ``/{user}/ogc-api``, the WPS
under ``/wps`` and ``/{user}/wps``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from prefect.client.orchestration import get_client

from api_gateway.auth import OidcVerifier
from api_gateway.errors import install_error_handlers, ogc_exception
from api_gateway.packages import warm_up
from api_gateway.routes import jobs, landing, processes, schedules
from api_gateway.slashes import TrailingSlashes
from api_gateway.wps import exception_response, is_wps_path
from api_gateway.wps import router as wps_router
from core.exceptions import PayloadTooLarge
from core.http import Guard
from core.secrets import Redactor, install_log_redaction
from core.settings import Settings, get_settings
from ogc_prefect import PrefectApi
from ogc_prefect.submit import running_outbox

__all__ = ["create_app"]


def _operation_id(route: APIRoute) -> str:
    prefix = "user_" if "{user}" in route.path_format else ""
    return prefix + route.name


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before any handler reads them."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        detail = f"the request body is larger than {self.limit} bytes"
        if is_wps_path(scope["path"]):
            too_large = exception_response(Request(scope), PayloadTooLarge(detail), detail)
        else:
            too_large = ogc_exception(
                413,
                "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/payload-too-large",
                "Payload too large",
                detail,
            )
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_large(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            return await self.app(scope, limited_receive, send)
        except _TooLarge:
            return await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        warming = loop.run_in_executor(None, warm_up)
        # The outbound guard resolves the engine's service hosts once: not on a request.
        await loop.run_in_executor(None, Guard.from_settings, settings)
        async with get_client() as client:
            app.state.prefect = PrefectApi(client, settings)
            try:
                async with running_outbox(app.state.prefect):
                    yield
            finally:
                await app.state.prefect.close()
        await warming

    app = FastAPI(
        title="OGC API - Processes on Prefect",
        version="0.1.0",
        description="Deploy and run CWL application packages through OGC API - Processes "
        "(Part 1 Core 1.0, Part 2 Deploy/Replace/Undeploy); every job is a Prefect flow run.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.redact = Redactor.from_settings(settings)
    install_log_redaction(settings)
    app.state.verifier = OidcVerifier(settings) if settings.oidc.issuer else None
    install_error_handlers(app)
    for router in (landing.router, processes.router, schedules.router, jobs.router):
        app.include_router(router, prefix="/ogc-api")
        app.include_router(router, prefix="/{user}/ogc-api")
    app.include_router(landing.router, include_in_schema=False)
    app.include_router(wps_router, prefix="/wps")
    app.include_router(wps_router, prefix="/{user}/wps")

    @app.get("/swagger-ui/oapip/", include_in_schema=False)
    async def swagger_ui():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="OGC API - Processes")

    @app.get("/swagger-ui/oapip", include_in_schema=False)
    async def swagger_ui_slash():
        return RedirectResponse("/swagger-ui/oapip/")

    @app.get("/health", include_in_schema=False)
    async def health():
        return {"status": "ok"}

    app.add_middleware(TrailingSlashes)
    app.add_middleware(_BodyLimit, limit=settings.gateway.max_request_bytes)
    return app
