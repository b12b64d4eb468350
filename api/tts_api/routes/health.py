"""Liveness, readiness and metrics (no API key: probes and Prometheus call these)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..deps import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    if state.synced:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"status": "syncing", "detail": "waiting for the first list of TtsDeployments, TtsVoices and Pods"}, 503
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(state: State) -> Response:
    body, media_type = state.metrics.render()
    return Response(body, media_type=media_type)
