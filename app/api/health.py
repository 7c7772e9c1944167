"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import HealthDep
from app.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Database, paseo binary and daemon reachable",
    responses={503: {"model": Readiness, "description": "Not ready; `checks` says what fails"}},
)
async def readyz(health: HealthDep) -> JSONResponse:
    readiness = await health.readiness()
    status = 200 if readiness.status == "ready" else 503
    return JSONResponse(readiness.model_dump(), status_code=status)
