"""Landing page, conformance declaration and the API definition."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_gateway.deps import PublicContextDep
from api_gateway.models import ConfClasses, LandingPage
from api_gateway.openapi import openapi_30
from api_gateway.views import CONFORMANCE, landing_page, render

router = APIRouter(tags=["Capabilities"])


@router.get("/", response_model=LandingPage, summary="Landing page")
async def get_landing_page(ctx: PublicContextDep):
    return render(ctx, "landing.html", landing_page(ctx))


@router.get("/conformance", response_model=ConfClasses, summary="Conformance classes")
async def get_conformance(ctx: PublicContextDep):
    return render(ctx, "conformance.html", {"conformsTo": CONFORMANCE})


@router.get("/api", summary="The API definition (OpenAPI 3.0)", include_in_schema=False)
async def get_api(request: Request):
    return JSONResponse(
        openapi_30(request.app), media_type="application/vnd.oai.openapi+json;version=3.0"
    )
