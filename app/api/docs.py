"""/docs and /openapi.json behind a read key, when PASEO_GATEWAY_PUBLIC_DOCS is false."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from app.api.deps import Reader

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, principal: Reader) -> JSONResponse:
    del principal
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger(principal: Reader) -> HTMLResponse:
    del principal
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Paseo Gateway")
