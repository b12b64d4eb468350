"""``POST /v1/audio/transcriptions``: OpenAI's multipart contract over the pod's ``Transcriber``.

The body is read up to the size limit before the form is parsed (a larger upload is a 413, never a
full disk); the fields are checked in ``validation``; decoding and transcription run in a worker
thread under the same slots and 429 queue as speech. A client that goes away sets the request's
stop event: the transcriber stops after the 30-second window it is decoding, and frees its slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message
from tts_crds.http_errors import ApiError
from tts_crds.transcription import TRANSCRIPTION_MEDIA_TYPES

from . import audio
from .engines import Transcriber, TranscriptionOptions
from .routes import host_of, metrics_of, settings_of
from .settings import Settings
from .transcript import Transcript, render
from .validation import TranscriptionForm, check_transcription, check_upload

log = logging.getLogger("tts_inference")

#: bytes of form fields and part headers a body may carry beside the largest file
FORM_SLACK = 1 << 20
#: how often a running transcription looks whether its client is still there
DISCONNECT_POLL_SECONDS = 0.25

#: the form, for /openapi.json
FORM_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "wav, mp3, ogg/opus, flac, m4a, webm…"},
        "model": {"type": "string"},
        "language": {"type": "string", "description": "ISO-639-1; empty: detected"},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": sorted(TRANSCRIPTION_MEDIA_TYPES), "default": "json"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
        "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["word", "segment"]}},
    },
}


def _replay(body: bytes) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the upload is larger than the {max_bytes:,} bytes a file may have", "file_too_large", "file")


async def read_form(request: Request, max_bytes: int) -> FormData:
    """The multipart form, read only as far as the limit allows."""
    limit = max_bytes + FORM_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(max_bytes)
    try:
        return await Request(request.scope, _replay(bytes(body))).form(max_files=1, max_fields=32)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", "")
        raise ApiError(400, f"the body is not a valid multipart form: {detail}", "invalid_value", "file") from exc


async def checked_request(request: Request, engine: Transcriber, settings: Settings) -> tuple[bytes, TranscriptionForm]:
    """The uploaded bytes and the checked fields (4xx for anything wrong, naming the field)."""
    form = await read_form(request, settings.transcription_max_bytes)
    try:
        upload = form.get("file")
        check_upload(upload, settings.transcription_max_bytes)
        assert isinstance(upload, UploadFile)
        fields = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form if k != "file"}
        wanted = check_transcription(fields, engine.languages(), settings.max_input_chars)
        return await upload.read(), wanted
    finally:
        await form.close()


def _decode_and_transcribe(
    engine: Transcriber, data: bytes, settings: Settings, options: TranscriptionOptions
) -> Transcript:
    samples = audio.decode_upload(data, engine.sample_rate, settings.transcription_max_audio_seconds)
    return engine.transcribe(samples, options)


async def run_watching(
    request: Request, engine: Transcriber, data: bytes, settings: Settings, options: TranscriptionOptions
) -> Transcript:
    """Decode and transcribe in a worker thread; set ``options.stop`` if the client goes away meanwhile."""
    work = asyncio.ensure_future(asyncio.to_thread(_decode_and_transcribe, engine, data, settings, options))
    try:
        while not work.done():
            await asyncio.wait({work}, timeout=DISCONNECT_POLL_SECONDS)
            if not work.done() and not options.stop.is_set() and await request.is_disconnected():
                options.stop.set()
        return work.result()
    except asyncio.CancelledError:
        options.stop.set()
        raise


def answer(transcript: Transcript, wanted: TranscriptionForm) -> Response:
    body = render(transcript, wanted.response_format, wanted.granularities)
    if isinstance(body, dict):
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
    media_type = TRANSCRIPTION_MEDIA_TYPES[wanted.response_format]
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})


async def transcriptions(request: Request) -> Response:
    host, settings, metrics = host_of(request), settings_of(request), metrics_of(request)
    try:
        engine = host.transcriber()
        if not host.ready:
            raise ApiError(503, "model is not loaded yet", "model_not_ready", None, {"Retry-After": "2"})
        data, wanted = await checked_request(request, engine, settings)
        release = await host.admit()
    except ApiError as exc:
        metrics.requests.labels(str(exc.status)).inc()
        raise
    options = TranscriptionOptions(wanted.language, wanted.prompt, wanted.temperature, wanted.words)
    t0 = time.monotonic()
    try:
        transcript = await run_watching(request, engine, data, settings, options)
    except audio.AudioInputError as exc:
        metrics.requests.labels("400").inc()
        raise ApiError(400, f"file: {exc}", "invalid_file", "file") from exc
    except (RuntimeError, ValueError) as exc:  # the model failed on valid input: the server's fault
        log.exception("transcription failed")
        metrics.requests.labels("500").inc()
        raise ApiError(500, f"transcription failed: {exc}", "transcription_failed") from exc
    finally:
        release()
        metrics.transcription_seconds.inc(time.monotonic() - t0)
    if options.stop.is_set():
        metrics.cancelled.inc()
        metrics.requests.labels("499").inc()  # nginx's "client closed request": nobody reads this answer
        return Response(status_code=499)
    metrics.transcribed_seconds.inc(transcript.duration)
    metrics.requests.labels("200").inc()
    return answer(transcript, wanted)


ROUTES = [Route("/v1/audio/transcriptions", transcriptions, methods=["POST"])]
