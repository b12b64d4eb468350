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
from tts_crds.models import Capability, TtsDeploymentSpec
from tts_crds.speech import MEDIA_TYPES, SpeechRequest, timestamps_problem

from .. import script_speech, sse
from ..aliases import resolve_voice
from ..deps import Authenticated, State
from ..kube import answering
from ..proxy import Trip, answer, code_for, count_request, enter
from ..scripts import Segment, plan_segments, script_problem
from ..state import RouterState
from ..voices import capability_of, resolve

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


def _script(state: State, body: SpeechRequest, model: str) -> list[Segment]:
    """A script's segments (``roles`` given, ADR 0052), every role's model checked: it exists and speaks."""
    problem = script_problem(body)
    if problem:
        raise problem

    def model_of(requested: str) -> str | None:
        name = state.model_name(requested)
        return name if state.deployment(name) is not None else None

    segments = plan_segments(body, model, model_of)
    for role, name in {s.role: s.model for s in segments}.items():
        if capability_of(state.deployment(name)) != Capability.SPEECH:
            raise ApiError(
                400,
                f"roles.{role}.model: model {name!r} transcribes speech; it does not speak",
                "not_a_speech_model",
                f"roles.{role}.model",
            )
    return segments


def _check_timestamps(body: SpeechRequest, spec: TtsDeploymentSpec | None) -> None:
    """``timestamps`` the model's engine cannot serve: refused here, before the model wakes."""
    problem = timestamps_problem(body, spec.engine.value if spec else "")
    if problem:
        raise ApiError(400, problem[1], problem[0], "timestamps")


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    description="OpenAI's speech request, streamed from the model's pods. kube-tts extensions: `sample_rate` "
    "(the audio resampled to that rate) and `roles`, which makes `input` a short script of `Role: line` lines "
    "(the TtsJob script format, `[pause 800ms]` for silence) spoken line by line, each role by its voice and "
    "model, as one stream (pcm, wav, mp3, opus or flac; audio or SSE). A bad line is a 400 naming `input` and "
    "the line; a role's unknown model a 404 naming `roles.<role>.model` (docs/adr/0052).",
    responses={
        200: {
            "content": {**{m: {} for m in MEDIA_TYPES.values()}, sse.MEDIA_TYPE: {}},
            "description": "The audio, streamed as it is synthesised (or server-sent events).",
        },
        400: {"description": "A bad request, in OpenAI's error shape naming the field (`param`)."},
        404: {"description": "The model (or a role's model) does not exist."},
        429: {"description": "The model's hold queue is full or the key's rate limit is exceeded; see Retry-After."},
        504: {"description": "The model did not wake (or free a slot) within its activationTimeoutSeconds."},
    },
)
async def create_speech(body: SpeechRequest, request: Request, state: State) -> Response:
    # plain audio requests rarely get here: the relay (``relay.py``) answers them in front of FastAPI
    arrived = time.monotonic()
    model = speech_model(state, body)
    if body.roles is not None:
        try:
            segments = _script(state, body, model)
            # every line's voice resolved first: a bad one is a 400 before any model wakes
            payloads = [await _payload(state, script_speech.segment_request(body, s), s.model) for s in segments]
        except ApiError as exc:
            count_request(state, model, code_for(exc))
            raise
        return await script_speech.speak(state, body, request, segments, payloads)
    trip = await plain_trip(state, body, model, arrived)
    if body.stream_format == "sse" and not trip.ticket.granted:
        return StreamingResponse(trip.sse_waiting(), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    return await answer(trip, request, events=body.stream_format == "sse")


def speech_model(state: RouterState, body: SpeechRequest) -> str:
    """The TtsDeployment that speaks ``body``, checked: it exists and speaks, and the input is within
    the limit. A refusal is counted."""
    model = state.model_name(body.model)
    obj = state.deployment(model)
    if obj is None:
        count_request(state, "", 404)
        raise ApiError(404, f"model {body.model!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    problem = None
    if len(body.input) > state.settings.max_input_chars:
        problem = ApiError(
            400,
            f"input is {len(body.input)} characters; the limit is {state.settings.max_input_chars}",
            "input_too_long",
            "input",
        )
    elif capability_of(obj) != Capability.SPEECH:
        problem = ApiError(
            400,
            f"model {model!r} transcribes speech; it does not speak (POST /v1/audio/transcriptions)",
            "not_a_speech_model",
            "model",
        )
    if problem is not None:
        count_request(state, model, code_for(problem))
        raise problem
    return model


async def plain_trip(state: RouterState, body: SpeechRequest, model: str, arrived: float) -> Trip:
    """A request without ``roles`` on its way: its ``timestamps`` checked, the pod's request built
    and a ticket taken in the model's hold queue. A refusal is counted."""
    try:
        _check_timestamps(body, state.spec(model))
        payload = await _payload(state, body, model)
        ticket = enter(state, model)
    except ApiError as exc:
        count_request(state, model, code_for(exc))
        raise
    return Trip(state, model, payload, ticket, arrived)
