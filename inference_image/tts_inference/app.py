"""The inference HTTP API: ``create_app(settings)`` builds it; nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send
from tts_crds import events
from tts_crds.http_errors import ApiError, error_body, install
from tts_crds.speech import MEDIA_TYPES, SpeechRequest

from . import audio
from .engines import EngineError, SynthesisOptions
from .host import EngineHost, Job, Metrics
from .settings import Settings
from .text import speakable, split_sentences

log = logging.getLogger("tts_inference")

SSE_MEDIA_TYPE = events.MEDIA_TYPE


class SpeechResponse(StreamingResponse):
    """A streamed synthesis that always ends its job: finished, failed, or abandoned by the client."""

    def __init__(self, job: Job, content: AsyncIterator[bytes], media_type: str, headers: dict[str, str]) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.job.close():
                self.job.host.metrics.requests.labels("499").inc()  # nginx's "client closed request"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        host = EngineHost(settings, metrics)
        host.on_fatal = getattr(app.state, "stop_server", None)
        app.state.host = host
        loader = asyncio.create_task(host.load())
        yield
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
        await host.close()

    app = FastAPI(
        title="kube-tts inference",
        version="0.1.0",
        description="One engine, one model. Speaks OpenAI's /v1/audio/speech shape; knows nothing of Kubernetes.",
        lifespan=lifespan,
    )
    install(app)

    def host_of(request: Request) -> EngineHost:
        host: EngineHost = request.app.state.host
        return host

    def fail(
        status: int, message: str, code: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> ApiError:
        metrics.requests.labels(str(status)).inc()
        return ApiError(status, message, code, param, headers=headers)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        host = host_of(request)
        if host.ready:
            return JSONResponse({"status": "ready", "load_seconds": host.load_seconds})
        if host.error:
            return JSONResponse({"status": "failed", "error": host.error}, 503)
        return JSONResponse({"status": "loading"}, 503)

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/status", tags=["status"])
    async def status(request: Request) -> dict:
        host = host_of(request)
        engine = host.engine
        return {
            "engine": settings.engine,
            "model": settings.model_uri,
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

    @app.get("/v1/audio/voices", tags=["speech"])
    async def voices(request: Request) -> dict:
        host = host_of(request)
        if not host.ready:
            raise ApiError(503, "model is not loaded yet", "model_not_ready", headers={"Retry-After": "2"})
        return {
            "object": "list",
            "default": settings.default_voice or host.engine.default_voice,
            "can_clone": host.engine.can_clone,
            "data": [{"id": v.id, "name": v.name, "language": v.language} for v in host.engine.voices()],
        }

    async def options_for(body: SpeechRequest, host: EngineHost) -> SynthesisOptions:
        """Check everything about a request that can be checked before audio starts (4xx here, never later)."""
        engine = host.engine
        if not speakable(body.input).strip():
            raise fail(400, "input is empty (or only control characters)", "invalid_value", "input")
        if len(body.input) > settings.max_input_chars:
            raise fail(
                400,
                f"input is {len(body.input)} characters; the limit is {settings.max_input_chars}",
                "input_too_long",
                "input",
            )
        if body.instructions:
            raise fail(400, f"engine {engine.name} does not take instructions", "unsupported_parameter", "instructions")
        for name in body.engine_parameters():
            if name not in engine.parameters:
                takes = ", ".join(sorted(engine.parameters)) or "none"
                raise fail(
                    400,
                    f"engine {engine.name} does not take {name} (it takes: {takes})",
                    "unsupported_parameter",
                    name,
                )
        reference = None
        if body.ref_audio is not None:
            if not engine.can_clone:
                raise fail(
                    400,
                    f"engine {engine.name} cannot clone voices; ref_audio is not accepted",
                    "cloning_not_supported",
                    "ref_audio",
                )
            try:
                reference = await asyncio.to_thread(
                    audio.decode_reference,
                    body.ref_audio,
                    settings.ref_audio_min_seconds,
                    settings.ref_audio_max_seconds,
                    settings.ref_audio_max_bytes,
                )
            except audio.AudioInputError as exc:
                raise fail(400, str(exc), "invalid_ref_audio", "ref_audio") from exc
        elif body.ref_text:
            raise fail(400, "ref_text needs ref_audio", "invalid_value", "ref_text")
        return SynthesisOptions(
            speed=body.speed,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            reference=reference,
            reference_text=body.ref_text,
        )

    @app.post(
        "/v1/audio/speech",
        tags=["speech"],
        response_class=Response,
        responses={200: {"content": {**{m: {} for m in MEDIA_TYPES.values()}, SSE_MEDIA_TYPE: {}}}},
    )
    async def speech(body: SpeechRequest, request: Request) -> Response:
        host = host_of(request)
        if not host.ready:
            raise fail(503, "model is not loaded yet", "model_not_ready", None, {"Retry-After": "2"})
        options = await options_for(body, host)
        wanted = body.voice
        if wanted in ("", "default") and settings.default_voice:
            wanted = settings.default_voice
        try:
            voice = host.engine.validate(wanted, options)
        except EngineError as exc:
            raise fail(400, str(exc), "voice_not_found", "voice") from exc
        sentences = split_sentences(body.input, settings.max_sentence_chars)
        encoder = audio.StreamEncoder(body.response_format, host.engine.sample_rate)
        try:
            job = await host.start(sentences, voice, options)
        except BaseException as exc:  # 429, or the client left while queued
            encoder.close()
            if isinstance(exc, ApiError):
                metrics.requests.labels(str(exc.status)).inc()
            raise
        headers = {"X-Sample-Rate": str(encoder.rate), "Cache-Control": "no-store"}
        if body.stream_format == "sse":
            content = sse_stream(job, encoder, body)
            return SpeechResponse(job, content, SSE_MEDIA_TYPE, {**headers, "X-Accel-Buffering": "no"})
        return SpeechResponse(job, audio_stream(job, encoder), MEDIA_TYPES[body.response_format], headers)

    async def audio_stream(job: Job, encoder: audio.StreamEncoder) -> AsyncIterator[bytes]:
        try:
            async for chunk in job.chunks():
                data = await asyncio.to_thread(encoder.feed, chunk)
                if data:
                    yield data
            yield await asyncio.to_thread(encoder.finish)
            metrics.requests.labels("200").inc()
        except Exception:
            # the status line has gone: all that is left is to cut the stream short
            metrics.requests.labels("500").inc()
            raise
        finally:
            encoder.close()

    async def sse_stream(job: Job, encoder: audio.StreamEncoder, body: SpeechRequest) -> AsyncIterator[bytes]:
        def delta(data: bytes) -> bytes:
            return events.AudioDelta.of(data).frame()

        try:
            async for chunk in job.chunks():
                data = await asyncio.to_thread(encoder.feed, chunk)
                if data:
                    yield delta(data)
            tail = await asyncio.to_thread(encoder.finish)
            if tail:
                yield delta(tail)
            yield events.AudioDone(
                usage=events.Usage.of_text(body.input),
                audio_seconds=round(job.samples / job.host.engine.sample_rate, 3),
                sample_rate=encoder.rate,
            ).frame()
            metrics.requests.labels("200").inc()
        except Exception as exc:
            log.exception("synthesis failed mid-stream")
            metrics.requests.labels("500").inc()
            yield events.ErrorEvent.of(error_body(f"synthesis failed: {exc}", "synthesis_failed", None, 500)).frame()
        finally:
            encoder.close()

    return app
