"""/metrics in the Prometheus text format (a read key, like every other route)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import Reader
from app.metrics import REGISTRY

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of this gateway process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(principal: Reader) -> Response:
    del principal
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
