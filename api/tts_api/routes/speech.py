"""``POST /v1/audio/speech``: check the request, resolve the voice, take a ticket in the model's hold
queue (waking the model from zero if needed), then hand the request to the proxy (``proxy.Trip``)
that waits for a slot and streams the pod's answer through.

- A ticket is granted at once when a ready pod has a free slot, else queued in arrival order —
  429 with ``Retry-After`` when the queue is full, 504 past the deployment's
  ``activationTimeoutSeconds``.
- ``stream_format: "sse"``: while waiting the client receives ``speech.status`` events, then the
  pod's events are relayed; pods that cannot send SSE yet get a plain audio request whose chunks
  the router frames as ``speech.audio.delta`` events.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from tts_crds.http_errors import ApiError
from tts_crds.models import Capability
from tts_crds.speech import MEDIA_TYPES, SpeechRequest, timestamps_problem

from .. import sse
from ..aliases import resolve_voice
from ..deps import Authenticated, State
from ..kube import answering
from ..proxy import Trip, answer, code_for, count_request, enter
from ..voices import capability_of, deployment_spec, resolve

router = APIRouter(tags=["speech"], dependencies=[Authenticated])
JSON = dict[str, Any]


async def _voice(state: State, model: str, requested: str) -> str:
    """A built-in ``voice`` (not a TtsVoice) as the pod needs it: aliases and blends resolved (ADR 0042)."""
    known = await state.model_voices(model)
    return requested if known is None else resolve_voice(known, requested)


async def _payload(state: State, body: SpeechRequest, model: str) -> JSON:
    """The request the pod receives: ``model`` and ``voice`` resolved, a cloned voice's clip and
    transcript filled in."""
    voice_obj = state.voices.objects.get(body.voice)
    resolved = resolve(body.voice, model, voice_obj, body.ref_audio is not None)
    payload = body.model_dump(exclude_none=True)
    payload["model"] = model
    payload["voice"] = resolved.voice if voice_obj is not None else await _voice(state, model, resolved.voice)
    if resolved.speed is not None and "speed" not in body.model_fields_set:
        payload["speed"] = resolved.speed
    if resolved.clip is not None:
        kind, name, key = resolved.clip
        message = f"voice {body.voice!r}: its reference clip {kind} {name!r} is missing"
        with answering(
            f"the clip of voice {body.voice!r}", {404: ApiError(400, message, "voice_unavailable", "voice")}
        ):
            clip = await state.kube.read_key(kind, name, key)
        if clip is None:
            raise ApiError(
                400, f"voice {body.voice!r}: key {key!r} is missing from {kind} {name!r}", "voice_unavailable", "voice"
            )
        payload["ref_audio"] = base64.b64encode(clip).decode()
        if resolved.ref_text:
            payload["ref_text"] = resolved.ref_text
    return payload


def _check_timestamps(body: SpeechRequest, obj: JSON | None) -> None:
    """``timestamps`` the model's engine cannot serve: refused here, before the model wakes."""
    spec = deployment_spec(obj)
    problem = timestamps_problem(body, spec.engine.value if spec else "")
    if problem:
        raise ApiError(400, problem[1], problem[0], "timestamps")


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={
        200: {
            "content": {**{m: {} for m in MEDIA_TYPES.values()}, sse.MEDIA_TYPE: {}},
            "description": "The audio, streamed as it is synthesised (or server-sent events).",
        },
        429: {"description": "The model's hold queue is full or the key's rate limit is exceeded; see Retry-After."},
        504: {"description": "The model did not wake (or free a slot) within its activationTimeoutSeconds."},
    },
)
async def create_speech(body: SpeechRequest, request: Request, state: State) -> Response:
    arrived = time.monotonic()
    model = state.model_name(body.model)
    if state.deployment(model) is None:
        count_request(state, "", 404)
        raise ApiError(404, f"model {body.model!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    try:
        if len(body.input) > state.settings.max_input_chars:
            raise ApiError(
                400,
                f"input is {len(body.input)} characters; the limit is {state.settings.max_input_chars}",
                "input_too_long",
                "input",
            )
        if capability_of(state.deployment(model)) != Capability.SPEECH:
            raise ApiError(
                400,
                f"model {model!r} transcribes speech; it does not speak (POST /v1/audio/transcriptions)",
                "not_a_speech_model",
                "model",
            )
        _check_timestamps(body, state.deployment(model))
        payload = await _payload(state, body, model)
        ticket = enter(state, model)
    except ApiError as exc:
        count_request(state, model, code_for(exc))
        raise
    trip = Trip(state, model, payload, ticket, arrived)
    if body.stream_format == "sse" and not ticket.granted:
        return StreamingResponse(trip.sse_waiting(), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    return await answer(trip, request, events=body.stream_format == "sse")
