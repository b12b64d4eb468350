"""The inference server's endpoints, plain Starlette (ADR 0054). What they share lives on ``app.state``
(set by ``create_app``): the settings, the metrics and, from the lifespan on, the engine host."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from tts_crds import events
from tts_crds.http_errors import ApiError, error_body, invalid_value
from tts_crds.speech import MEDIA_TYPES, SpeechRequest
from tts_crds.text import split_sentences

from . import audio
from .engines import Engine, EngineError, SynthesisOptions
from .host import EngineHost, Job, Metrics
from .settings import Settings
from .validation import check_speech, wanted_voice

log = logging.getLogger("tts_inference")


Piece = tuple[bytes, bool]  # bytes of a response, and whether they are its last


class SpeechResponse(Response):
    """A streamed synthesis that always ends its job: finished, failed, or abandoned by the client.

    The status line waits for the first bytes, and the last bytes carry the end of the body, so a
    one-sentence answer leaves in one TCP segment and its reader (the router) wakes once, not three
    times (docs/benchmarks.md, "Router overhead"). Until the first bytes nothing has gone out: a
    failure is an HTTP error, and a pod that goes away meanwhile closes the connection unanswered,
    which the router retries on another pod (ADR 0046). The client leaving is heard by one pending
    ``receive()`` and stops the synthesis."""

    def __init__(self, job: Job, content: AsyncIterator[Piece], media_type: str, headers: dict[str, str]) -> None:
        self.status_code, self.media_type, self.background = 200, media_type, None
        self.init_headers(headers)  # no body: no Content-Length, the body goes out chunked
        self.job = job
        self.pieces = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        listening = asyncio.ensure_future(receive())
        listening.add_done_callback(self._heard)
        started = False
        try:
            async for data, last in self.pieces:
                if not (data or last):
                    continue
                if not started:
                    await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
                    started = True
                if last:  # the server answers a pending receive() once the response is complete
                    listening.remove_done_callback(self._heard)
                await send({"type": "http.response.body", "body": data, "more_body": not last})
        finally:
            listening.remove_done_callback(self._heard)
            listening.cancel()
            if self.job.close():
                self.job.host.metrics.requests.labels("499").inc()  # nginx's "client closed request"

    def _heard(self, listening: asyncio.Future[Message]) -> None:
        heard = not listening.cancelled() and listening.exception() is None
        if heard and listening.result().get("type") == "http.disconnect":
            self.job.leave()


def host_of(request: Request) -> EngineHost:
    host: EngineHost = request.app.state.host
    return host


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def is_json(content_type: str | None) -> bool:
    """Whether a body is JSON by its content type: ``application/json`` or ``application/*+json``, as
    FastAPI reads bodies (a body without a content type is not)."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime.count("/") != 1:
        return False
    main, sub = mime.split("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


async def speech_request(request: Request) -> SpeechRequest:
    """The request's body as a ``SpeechRequest``, or the 400 that says what is wrong with it: the first
    schema error as ``param: message`` (``invalid_value``), the offset of a JSON syntax error, or a body
    that cannot be read as text. The same answers as FastAPI gave (ADR 0054)."""
    raw = await request.body()
    if not raw:
        raise invalid_value([], "Field required")
    body: object = raw
    if is_json(request.headers.get("content-type")):
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise invalid_value([exc.pos], "JSON decode error") from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8/16/32, or nested past the parser's depth
            raise ApiError(400, "There was an error parsing the body", "http_error") from exc
    try:
        # from_attributes: a body that is not an object gets the message it always had
        return SpeechRequest.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise invalid_value(first["loc"], first["msg"]) from exc


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    host = host_of(request)
    if host.ready:
        return JSONResponse({"status": "ready", "load_seconds": host.load_seconds})
    if host.error:
        return JSONResponse({"status": "failed", "error": host.error}, 503)
    return JSONResponse({"status": "loading"}, 503)


async def prometheus(request: Request) -> Response:
    return Response(generate_latest(metrics_of(request).registry), media_type=CONTENT_TYPE_LATEST)


async def status(request: Request) -> Response:
    host, settings = host_of(request), settings_of(request)
    engine = host.engine
    return JSONResponse(
        {
            "engine": settings.engine,
            "model": settings.model_uri,
            "capabilities": sorted(engine.capabilities),
            "device": engine.device,
            "gpu_memory": engine.gpu_memory() if host.ready else None,
            "ready": host.ready,
            "error": host.error,
            "load_seconds": host.load_seconds,
            "sample_rate": engine.sample_rate if host.ready else None,
            "can_clone": engine.can_clone,
            "parameters": sorted(engine.parameters),
            "details": engine.details() if host.ready else {},
            "inflight_requests": host.inflight,
            "queued_requests": host.queued,
            "max_concurrency": settings.max_concurrency,
            "max_queue": settings.max_queue,
        }
    )


async def voices(request: Request) -> Response:
    host, settings = host_of(request), settings_of(request)
    engine = host.speaker()
    if not host.ready:
        raise ApiError(503, "model is not loaded yet", "model_not_ready", headers={"Retry-After": "2"})
    return JSONResponse(
        {
            "object": "list",
            "default": settings.default_voice or engine.default_voice,
            "can_clone": engine.can_clone,
            "data": [{"id": v.id, "name": v.name, "language": v.language} for v in engine.voices()],
        }
    )


async def options_for(body: SpeechRequest, engine: Engine, settings: Settings) -> SynthesisOptions:
    """Check the request (4xx here, never later) and decode its reference clip, if any."""
    check_speech(body, engine, settings)
    reference = None
    if body.ref_audio is not None:
        try:
            reference = await asyncio.to_thread(
                audio.decode_reference,
                body.ref_audio,
                settings.ref_audio_min_seconds,
                settings.ref_audio_max_seconds,
                settings.ref_audio_max_bytes,
            )
        except audio.AudioInputError as exc:
            raise ApiError(400, str(exc), "invalid_ref_audio", "ref_audio") from exc
    return SynthesisOptions(
        speed=body.speed,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        reference=reference,
        reference_text=body.ref_text,
        word_timestamps=body.timestamps == "word",
    )


async def speech(request: Request) -> Response:
    body = await speech_request(request)
    host, settings, metrics = host_of(request), settings_of(request), metrics_of(request)
    try:
        engine = host.speaker()
        if not host.ready:
            raise ApiError(503, "model is not loaded yet", "model_not_ready", None, {"Retry-After": "2"})
        options = await options_for(body, engine, settings)
        try:
            voice = engine.validate(wanted_voice(body, settings), options)
        except EngineError as exc:
            raise ApiError(400, str(exc), "voice_not_found", "voice") from exc
        sentences = split_sentences(body.input, settings.max_sentence_chars)
        whole = audio.sent_whole(body.response_format, body.stream_format)
        encoder = audio.StreamEncoder(body.response_format, engine.sample_rate, whole, body.sample_rate)
        try:
            job = await host.start(sentences, voice, options)
        except BaseException:  # 429, or the client left while queued
            encoder.close()
            raise
    except ApiError as exc:
        metrics.requests.labels(str(exc.status)).inc()
        raise
    headers = {"X-Sample-Rate": str(encoder.rate), "Cache-Control": "no-store"}
    if body.stream_format == "sse":
        content = sse_stream(job, encoder, body, metrics)
        return SpeechResponse(job, content, events.MEDIA_TYPE, {**headers, "X-Accel-Buffering": "no"})
    media_type = MEDIA_TYPES[body.response_format]
    return SpeechResponse(job, audio_stream(job, encoder, metrics), media_type, headers)


async def audio_stream(job: Job, encoder: audio.StreamEncoder, metrics: Metrics) -> AsyncIterator[Piece]:
    """The encoded audio as it comes; the end goes out with the last chunk when the synthesis has
    ended by the time that chunk is encoded (``Job.at_end``), else on its own."""
    ended = False
    try:
        async for chunk in job.chunks():
            data = await _encoding(encoder.feed, chunk, encoder.light)
            ended = job.at_end()
            if ended:
                data += await _encoding(encoder.finish, None, encoder.light)
            yield data, ended
        if not ended:
            yield await _encoding(encoder.finish, None, encoder.light), True
        metrics.requests.labels("200").inc()
    except Exception:
        # after the first bytes the status line has gone and all that is left is to cut the stream
        # short; before them, uvicorn answers 500
        metrics.requests.labels("500").inc()
        raise
    finally:
        encoder.close()


async def _encoding(step: Callable[..., bytes], chunk: np.ndarray | None, light: bool) -> bytes:
    """An encoder's step: in place when it only copies bytes (raw pcm), else off the event loop."""
    args = () if chunk is None else (chunk,)
    return step(*args) if light else await asyncio.to_thread(step, *args)


async def sse_stream(
    job: Job, encoder: audio.StreamEncoder, body: SpeechRequest, metrics: Metrics
) -> AsyncIterator[Piece]:
    try:
        sent = 0  # words sent as speech.word events
        async for chunk in job.chunks():
            data = await _encoding(encoder.feed, chunk, encoder.light)
            if data:
                yield events.AudioDelta.of(data).frame(), False
            for word in job.words[sent:]:
                yield events.SpeechWord.of(word).frame(), False
            sent = len(job.words)
        tail = await _encoding(encoder.finish, None, encoder.light)
        if tail:
            yield events.AudioDelta.of(tail).frame(), False
        done = events.AudioDone(
            usage=events.Usage.of_text(body.input),
            audio_seconds=round(job.samples / job.engine.sample_rate, 3),
            sample_rate=encoder.rate,
        )
        if body.timestamps:
            done.words = job.words
        yield done.frame(), True
        metrics.requests.labels("200").inc()
    except Exception as exc:
        log.exception("synthesis failed mid-stream")
        metrics.requests.labels("500").inc()
        yield events.ErrorEvent.of(error_body(f"synthesis failed: {exc}", "synthesis_failed", None, 500)).frame(), True
    finally:
        encoder.close()


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
    Route("/v1/status", status, methods=["GET"]),
    Route("/v1/audio/voices", voices, methods=["GET"]),
    Route("/v1/audio/speech", speech, methods=["POST"]),
]
