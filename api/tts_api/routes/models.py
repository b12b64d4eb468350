"""``/v1/models``: every TtsDeployment in the router's namespace, in OpenAI's list shape, plus
``wake`` and ``sleep`` (admin) through the scale subresource."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from tts_crds.aliases import AliasTable
from tts_crds.blends import can_blend
from tts_crds.http_errors import ApiError
from tts_crds.models import word_timestamps
from tts_crds.times import parse_time

from .. import activation
from ..aliases import model_voices
from ..deps import Admin, Authenticated, State
from ..kube import answering
from ..voices import capability_of, condition, deployment_spec, voice_model

router = APIRouter(tags=["models"], dependencies=[Authenticated])
JSON = dict[str, Any]


def _created(obj: JSON) -> int:
    ts = obj["metadata"].get("creationTimestamp")
    return int(parse_time(ts) or 0)


async def model_entry(state: State, obj: JSON, table: AliasTable) -> JSON:
    name = obj["metadata"]["name"]
    spec = deployment_spec(obj)
    replicas = spec.replicas if spec else 0
    ready_cond = condition(obj) or {}
    endpoints = state.endpoints(name)
    builtin = await state.builtin_voices(name)
    custom = sorted(v for v, o in state.voices.objects.items() if voice_model(o) == name)
    return {
        "id": name,
        "object": "model",
        "created": _created(obj),
        "owned_by": "kube-tts",
        "engine": spec.engine.value if spec else None,
        "capability": capability_of(obj),
        # the speech request's "timestamps": "word" (ADR 0045)
        "word_timestamps": bool(spec and word_timestamps(spec.engine.value)),
        "ready": bool(endpoints),
        "replicas": replicas,
        "ready_replicas": len(endpoints),
        "scaled_to_zero": replicas == 0 and not endpoints,
        "status": ready_cond.get("reason", "Unknown"),
        "voices": [v["id"] for v in (builtin or {}).get("data", [])] + custom,
        "default_voice": (builtin or {}).get("default"),
        # ADR 0042: the other names this model answers to, and what OpenAI's voice names mean here
        "aliases": table.aliases_of(name),
        "alias_conflicts": [alias for alias, _why in table.conflicts.get(name, [])],
        "voice_aliases": model_voices(name, obj, builtin).aliases,
        "voice_blending": bool(spec and can_blend(spec.engine)),
    }


def _existing(state: State, name: str) -> JSON:
    obj = state.deployment(state.model_name(name))
    if obj is None:
        raise ApiError(404, f"model {name!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    return obj


@router.get("/v1/models")
async def list_models(state: State) -> JSON:
    objs = [o for _, o in sorted(state.deployments.objects.items())]
    table = state.aliases()
    return {"object": "list", "data": list(await asyncio.gather(*(model_entry(state, o, table) for o in objs)))}


@router.get("/v1/models/{name}")
async def get_model(name: str, state: State) -> JSON:
    """A model by its name or by one of its aliases."""
    return await model_entry(state, _existing(state, name), state.aliases())


@router.post("/v1/models/{name}/wake")
async def wake_model(name: str, state: State, _: Admin) -> JSON:
    """Raise spec.replicas from 0 to 1 (no change if the model is awake already)."""
    name = _existing(state, name)["metadata"]["name"]
    result = activation.CONFLICT
    for _attempt in range(3):
        result = await state.kube.wake(name)
        if result != activation.CONFLICT:
            break
    if result == activation.GONE:
        raise ApiError(404, f"model {name!r} does not exist", "model_not_found", "model")
    if result in (activation.FAILED, activation.CONFLICT):
        raise ApiError(503, f"could not scale {name!r}; see the router's log", "scale_failed")
    state.metrics.wakes.labels(name, result).inc()
    return {
        "id": name,
        "object": "model.scale",
        "action": "wake",
        "changed": result == activation.SCALED,
        "ready_replicas": len(state.endpoints(name)),
    }


@router.post("/v1/models/{name}/sleep")
async def sleep_model(name: str, state: State, _: Admin) -> JSON:
    """Scale to zero now (the cluster form of "offload the GPU"); the next request wakes it again."""
    obj = _existing(state, name)
    name, spec = obj["metadata"]["name"], deployment_spec(obj)
    floor = spec.min_replicas if spec else 0
    if floor > 0:
        raise ApiError(
            409,
            f"model {name!r} has minReplicas {floor}; the operator would scale it back up — set minReplicas to 0 first",
            "min_replicas_nonzero",
            "model",
        )
    with answering(f"model {name!r}"):
        before, _rv = await state.kube.get_replicas(name)
        if before != 0:
            await state.kube.set_replicas(name, 0)
    return {
        "id": name,
        "object": "model.scale",
        "action": "sleep",
        "changed": before != 0,
        "replicas_before": before,
        "queued_requests": state.dispatcher.queued(name),
    }
