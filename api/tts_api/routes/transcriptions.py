"""``POST /v1/audio/transcriptions``: OpenAI's transcription API, served by a TtsDeployment whose
engine transcribes (``whisper``; ADR 0041).

The request takes the same way as speech: a ticket in the model's hold queue (waking it from zero,
429 when the queue is full, 504 past ``activationTimeoutSeconds``), then the proxy sends it to a
pod as multipart and streams the answer back. What can be checked without the model is checked
here, before anything wakes: the model's capability, the response format, the granularities, the
file's presence and size. The pod judges the rest (an undecodable file, a language it lacks).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import aiohttp
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from tts_crds.http_errors import ApiError
from tts_crds.models import Capability
from tts_crds.transcription import check_granularities, check_response_format, check_temperature

from ..deps import Authenticated, State
from ..proxy import Trip, answer, code_for, count_request, enter
from ..voices import capability_of

router = APIRouter(tags=["transcriptions"], dependencies=[Authenticated])
JSON = dict[str, Any]

PATH = "/v1/audio/transcriptions"
# what OpenAI clients send when they do not pick a model
OPENAI_DEFAULT = "whisper-1"


def pick_model(requested: str, deployments: dict[str, JSON], default: str = "") -> str:
    """The TtsDeployment a transcription goes to: the one named, else for ``whisper-1`` (OpenAI's
    default, which clients send unasked) the configured default or the first transcription model
    by name; else the name as given (the caller answers 404)."""
    if requested in deployments or requested != OPENAI_DEFAULT:
        return requested
    if default:
        return default
    transcribers = sorted(n for n, o in deployments.items() if capability_of(o) == Capability.TRANSCRIPTION)
    return transcribers[0] if transcribers else requested


def check_options(response_format: str, granularities: list[str], temperature: float | None) -> None:
    """The options the router can judge without the model: the same checks, and the same 400s
    naming the field, as the inference server's (``tts_crds.transcription``)."""
    check_granularities(granularities, check_response_format(response_format))
    if temperature is not None:
        check_temperature(str(temperature))


def check_model(state: State, model: str) -> None:
    obj = state.deployment(model)
    if obj is None:
        raise ApiError(404, f"model {model!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    if capability_of(obj) != Capability.TRANSCRIPTION:
        raise ApiError(
            400,
            f"model {model!r} speaks; it does not transcribe (deploy a TtsDeployment with engine: whisper)",
            "not_a_transcription_model",
            "model",
        )


Fields = dict[str, str | list[str]]


def upstream_form(data: bytes, filename: str, content_type: str, fields: Fields) -> aiohttp.FormData:
    """The multipart request a pod receives (built anew for each pod it is sent to)."""
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            form.add_field(key, item)
    return form


@router.post(
    PATH,
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}, "text/plain": {}, "text/vtt": {}, "application/x-subrip": {}},
            "description": "The transcript: json, text, verbose_json (segments, words), srt or vtt.",
        },
        429: {"description": "The model's hold queue is full or the key's rate limit is exceeded; see Retry-After."},
        504: {"description": "The model did not wake (or free a slot) within its activationTimeoutSeconds."},
    },
)
async def create_transcription(
    request: Request,
    state: State,
    file: Annotated[UploadFile, File(description="The audio: wav, mp3, ogg/opus, flac, m4a, webm (≤ 25 MB).")],
    model: Annotated[str, Form(description="A TtsDeployment with engine whisper (or whisper-1: the default one).")],
    language: Annotated[str | None, Form(description="ISO-639-1 code of the speech; detected when absent.")] = None,
    prompt: Annotated[str | None, Form(description="Text that steers spelling and style.")] = None,
    response_format: Annotated[str, Form(description="json, text, verbose_json, srt or vtt.")] = "json",
    temperature: Annotated[float | None, Form()] = None,
    timestamp_granularities: Annotated[
        list[str] | None, Form(alias="timestamp_granularities[]", description="word and/or segment (verbose_json).")
    ] = None,
) -> Response:
    arrived = time.monotonic()
    target = pick_model(state.model_name(model), state.deployments.objects, state.settings.transcription_model)
    granularities = timestamp_granularities or []
    try:
        check_model(state, target)
        check_options(response_format, granularities, temperature)
        limit = state.settings.transcription_max_bytes
        data = await file.read(limit + 1)
        if not data:
            raise ApiError(400, "file is empty", "invalid_file", "file")
        if len(data) > limit:
            raise ApiError(413, f"file is larger than {limit // (1024 * 1024)} MiB", "file_too_large", "file")
        ticket = enter(state, target)
    except ApiError as exc:
        count_request(state, target if state.deployment(target) else "", code_for(exc))
        raise
    fields: Fields = {"model": target, "response_format": response_format}
    if language:
        fields["language"] = language
    if prompt:
        fields["prompt"] = prompt
    if temperature is not None:
        fields["temperature"] = str(temperature)
    if granularities:
        fields["timestamp_granularities[]"] = granularities
    filename, content_type = file.filename or "audio", file.content_type or "application/octet-stream"
    trip = Trip(
        state,
        target,
        {},
        ticket,
        arrived,
        path=PATH,
        form=lambda: upstream_form(data, filename, content_type, fields),
    )
    return await answer(trip, request)
