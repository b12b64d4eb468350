"""``GET /openapi.json`` and ``GET /docs``: the inference server described, built when first asked (never
at start) from the request model's JSON schema and a small table of the paths (ADR 0054)."""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tts_crds import events
from tts_crds.speech import MEDIA_TYPES, SpeechRequest
from tts_crds.transcription import TRANSCRIPTION_MEDIA_TYPES

from .transcription import FORM_SCHEMA

TITLE = "kube-tts inference"
VERSION = "0.1.0"
DESCRIPTION = (
    "One engine, one model. Speaks OpenAI's /v1/audio/speech shape, or (a whisper model) transcribes "
    "in its /v1/audio/transcriptions shape; knows nothing of Kubernetes."
)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code", "param"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "invalid_request_error, rate_limit_error, server_error…"},
                "code": {"type": "string", "description": "What went wrong, for programs: invalid_value, …"},
                "param": {"type": ["string", "null"], "description": "The field at fault, if one is."},
            },
        }
    },
}

_OBJECT = {"application/json": {"schema": {"type": "object"}}}


def _errors(*statuses: int) -> dict[str, dict]:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    what = {
        400: "The request is invalid; param names the field.",
        413: "The upload is too large.",
        429: "Every slot and the queue are taken; Retry-After says when to try again.",
        503: "The model is not loaded yet; Retry-After says when to try again.",
    }
    return {str(s): {"description": what[s], "content": content} for s in statuses}


def _get(tag: str, summary: str, ok: dict, *errors: int) -> dict:
    return {"get": {"tags": [tag], "summary": summary, "responses": {"200": ok, **_errors(*errors)}}}


def _post(tag: str, summary: str, body: dict, ok: dict, *errors: int) -> dict:
    responses = {"200": ok, **_errors(*errors)}
    return {"post": {"tags": [tag], "summary": summary, "requestBody": body, "responses": responses}}


@functools.cache
def document() -> dict:
    """The OpenAPI 3.1 document (the same on every call: built once, on the first)."""
    speech = SpeechRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = {**speech.pop("$defs", {}), "SpeechRequest": speech, "Error": ERROR_SCHEMA}
    audio: dict[str, dict] = {**{m: {} for m in MEDIA_TYPES.values()}, events.MEDIA_TYPE: {}}
    transcripts: dict[str, dict] = {m: {} for m in sorted(set(TRANSCRIPTION_MEDIA_TYPES.values()))}
    paths = {
        "/healthz": _get("health", "The process is up", {"description": "Up.", "content": _OBJECT}),
        "/readyz": _get(
            "health",
            "The model is loaded and has spoken (503 until then, or with the load's error)",
            {"description": "Ready.", "content": _OBJECT},
        ),
        "/metrics": _get(
            "health", "Prometheus metrics", {"description": "The metrics.", "content": {"text/plain": {}}}
        ),
        "/v1/status": _get(
            "status", "Engine, model, device, load and queue", {"description": "The status.", "content": _OBJECT}
        ),
        "/v1/audio/voices": _get(
            "speech", "The model's voices", {"description": "The voices.", "content": _OBJECT}, 503
        ),
        "/v1/audio/speech": _post(
            "speech",
            "Speak the input (OpenAI's shape, plus kube-tts extensions)",
            {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SpeechRequest"}}},
            },
            {"description": "The audio, streamed, or speech.audio.delta events.", "content": audio},
            400,
            429,
            503,
        ),
        "/v1/audio/transcriptions": _post(
            "transcription",
            "Transcribe an upload (OpenAI's shape)",
            {"required": True, "content": {"multipart/form-data": {"schema": FORM_SCHEMA}}},
            {"description": "The transcript.", "content": transcripts},
            400,
            413,
            429,
            503,
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document())


async def docs(request: Request) -> Response:
    """Swagger UI over /openapi.json. FastAPI's page, imported on the first visit: a pod that is never
    browsed never loads FastAPI."""
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{TITLE} - Swagger UI")


ROUTES = [Route("/openapi.json", openapi_json, methods=["GET"]), Route("/docs", docs, methods=["GET"])]
