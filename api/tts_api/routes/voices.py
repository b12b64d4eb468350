"""``/v1/audio/voices``: the models' built-in speakers and the namespace's TtsVoices; uploading a
reference clip creates a TtsVoice and a ConfigMap holding the clip (admin)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from tts_crds.http_errors import ApiError
from tts_crds.models import Capability

from ..deps import Admin, Authenticated, Listing, State
from ..kube import answering
from ..voices import capability_of, check_voice_name, inspect_clip, storable, voice_entry, voice_model, voice_objects

router = APIRouter(tags=["voices"], dependencies=[Authenticated])
# the lists OpenAI clients read (open without a key where KUBETTS_OPEN_AUDIO_LISTS says so)
listing = APIRouter(tags=["voices"], dependencies=[Listing])
JSON = dict[str, Any]


async def _builtin(state: State, model: str) -> list[JSON]:
    known = await state.builtin_voices(model)
    if not known:
        return []
    default = known.get("default")
    return [
        {
            "id": v.get("id"),
            "object": "voice",
            "model": model,
            "type": "builtin",
            "name": v.get("name", v.get("id")),
            "language": v.get("language"),
            "default": v.get("id") == default,
        }
        for v in known.get("data", [])
        if isinstance(v, dict)
    ]


async def _openai_voices(state: State, model: str | None, builtin: list[JSON], custom: list[JSON]) -> list[JSON]:
    """``voices`` as OpenAI clients read it (Open WebUI: ``{id, name}``): the voices a request with
    this model (or, without one, with ``tts-1``: the default model) may name, aliases included."""
    target = model if model is not None else state.aliases().owners.get("tts-1")
    known = await state.model_voices(target) if target else None
    if known is None:
        return []
    own = [{**v, "name": v["name"] or v["id"]} for v in builtin if v["model"] == target]
    mine = [v for v in custom if v["model"] == target]
    named = [{"id": v["id"], "name": v["id"], "model": target, "type": v["type"]} for v in mine]
    alias = [
        {"id": a, "name": f"{a} ({t})", "model": target, "type": "alias", "target": t}
        for a, t in known.aliases.items()
        if a not in state.voices.objects
    ]
    return own + alias + named


@listing.get("/v1/audio/voices")
async def list_voices(state: State, model: str | None = None) -> JSON:
    """Built-in speakers (learnt from a ready pod; remembered while the model sleeps) and TtsVoices
    in ``data``; in ``voices`` the names one model answers to, its voice aliases included."""
    if model is not None:
        model = state.model_name(model)
        if state.deployment(model) is None:
            raise ApiError(404, f"model {model!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    models = [model] if model is not None else sorted(state.deployments.objects)
    builtin = [v for group in await asyncio.gather(*(_builtin(state, m) for m in models)) for v in group]
    custom = [
        voice_entry(o) for _, o in sorted(state.voices.objects.items()) if model is None or voice_model(o) == model
    ]
    voices = await _openai_voices(state, model, builtin, custom)
    return {"object": "list", "data": builtin + custom, "voices": voices}


@listing.get("/v1/audio/models")
async def list_audio_models(state: State) -> JSON:
    """The speech models and their aliases as ``{models: [{id}]}`` (what Open WebUI reads)."""
    table = state.aliases()
    speech = sorted(n for n, o in state.deployments.objects.items() if capability_of(o) == Capability.SPEECH)
    models: list[JSON] = [{"id": n, "object": "model", "owned_by": "kube-tts"} for n in speech]
    models += [
        {"id": a, "object": "model", "owned_by": "kube-tts", "alias_of": owner}
        for a, owner in sorted(table.owners.items())
        if owner in speech
    ]
    return {"object": "list", "models": models}


@router.post("/v1/audio/voices", status_code=201)
async def create_voice(
    state: State,
    _: Admin,
    name: Annotated[str, Form(description="Voice name: a DNS label, at most 50 characters.")],
    model: Annotated[str, Form(description="The TtsDeployment that will speak with this voice.")],
    file: Annotated[UploadFile, File(description="Reference clip: wav or flac, 1-30 s, at most 10 MB.")],
    consent: Annotated[bool, Form(description="true: the speaker consented to having their voice cloned.")] = False,
    transcript: Annotated[str, Form(description="What is said in the clip.")] = "",
    language: Annotated[str, Form(description="BCP 47 language tag.")] = "en",
    description: Annotated[str, Form()] = "",
) -> JSONResponse:
    check_voice_name(name)
    if state.deployment(model) is None:
        raise ApiError(404, f"model {model!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    if not consent:
        raise ApiError(
            400,
            "consent must be true: only upload a voice whose speaker agreed to it being cloned",
            "consent_required",
            "consent",
        )
    if name in state.voices.objects:
        raise ApiError(409, f"voice {name!r} already exists", "voice_exists", "name")
    limit = state.settings.voice_max_bytes
    data = await file.read(limit + 1)
    clip = await asyncio.to_thread(
        inspect_clip, data, limit, state.settings.voice_min_seconds, state.settings.voice_max_seconds
    )
    stored = await asyncio.to_thread(storable, clip)
    try:
        voice, configmap = voice_objects(name, state.namespace, model, stored, transcript, language, description)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][-1]) if err.get("loc") else None
        param = {"text": "transcript"}.get(field or "", field)
        raise ApiError(400, f"{param}: {err['msg']}", "invalid_value", param) from exc
    exists = ApiError(409, f"voice {name!r} (or its ConfigMap) already exists", "voice_exists", "name")
    with answering(f"voice {name!r}", {409: exists}):
        created = await state.kube.create_voice(voice, configmap)
    entry = voice_entry(created)
    entry["audio"] = {
        "format": stored.format,
        "bytes": len(stored.data),
        "durationSeconds": round(stored.duration, 3),
        "sampleRate": stored.sample_rate,
        "channels": stored.channels,
        "sha256": stored.sha256,
    }
    return JSONResponse(entry, 201)


@router.delete("/v1/audio/voices/{name}")
async def delete_voice(name: str, state: State, _: Admin) -> JSON:
    """Delete the TtsVoice; its ConfigMap goes with it (owner reference)."""
    check_voice_name(name)
    missing = ApiError(404, f"voice {name!r} does not exist", "voice_not_found", "name")
    with answering(f"voice {name!r}", {404: missing}):
        await state.kube.delete_voice(name)
    return {"id": name, "object": "voice", "deleted": True}
