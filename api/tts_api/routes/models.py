"""``GET /v1/models``: every TtsDeployment in the router's namespace, in OpenAI's list shape."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from tts_crds.http_errors import ApiError

from ..deps import Authenticated, State

router = APIRouter(tags=["models"], dependencies=[Authenticated])


def _created(obj: dict[str, Any]) -> int:
    ts = obj["metadata"].get("creationTimestamp")
    return int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()) if ts else 0


def model_entry(state: State, obj: dict[str, Any]) -> dict[str, Any]:
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    ready_cond: dict[str, Any] = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
    return {
        "id": name,
        "object": "model",
        "created": _created(obj),
        "owned_by": "kube-tts",
        "engine": obj.get("spec", {}).get("engine"),
        "ready": bool(state.endpoints(name)),
        "replicas": obj.get("spec", {}).get("replicas", 0),
        "ready_replicas": len(state.endpoints(name)),
        "status": ready_cond.get("reason", "Unknown"),
    }


@router.get("/v1/models")
async def list_models(state: State) -> dict[str, Any]:
    data = [model_entry(state, o) for _, o in sorted(state.deployments.objects.items())]
    return {"object": "list", "data": data}


@router.get("/v1/models/{name}")
async def get_model(name: str, state: State) -> dict[str, Any]:
    obj = state.deployments.objects.get(name)
    if obj is None:
        raise ApiError(404, f"model {name!r} does not exist", "model_not_found", "model")
    return model_entry(state, obj)
