"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    if state.synced:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "syncing", "detail": "waiting for the first list of TtsDeployments and Pods"}, 503)
