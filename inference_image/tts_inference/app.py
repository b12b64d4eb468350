"""The inference HTTP API: ``create_app(settings)`` builds it; nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from tts_crds.http_errors import ApiError, install
from tts_crds.speech import MEDIA_TYPES, SpeechRequest

from . import audio
from .engines import Engine, EngineError, ModelLoadError, load_engine
from .settings import Settings

log = logging.getLogger("tts_inference")

WARMUP_TEXT = "Warming up."


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("kubetts_inference_requests", "Speech requests by outcome", ["code"], registry=r)
        self.inflight = Gauge("kubetts_inference_inflight_requests", "Requests being synthesised", registry=r)
        self.queued = Gauge("kubetts_inference_queued_requests", "Requests waiting for a synthesis slot", registry=r)
        self.latency = Histogram(
            "kubetts_inference_first_audio_seconds",
            "Time to the first audio chunk",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.audio_seconds = Counter("kubetts_inference_audio_seconds", "Seconds of audio produced", registry=r)
        self.ready = Gauge("kubetts_inference_model_ready", "1 once the model is loaded and warmed up", registry=r)


class EngineHost:
    """Owns the engine: loads it in the background, bounds concurrency, streams chunks."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine: Engine = load_engine(settings.engine, settings.model_uri, settings.model_dir)
        self.ready = False
        self.error: str | None = None
        self.load_seconds: float | None = None
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self.inflight = 0
        self.queued = 0

    async def load(self) -> None:
        t0 = time.monotonic()
        log.info("loading %s model %s", self.settings.engine, self.settings.model_uri)
        try:
            await asyncio.to_thread(self.engine.load)
            # one synthesis so the first real request does not pay for lazy initialisation
            await asyncio.to_thread(lambda: list(self.engine.synthesize(WARMUP_TEXT, "default", 1.0)))
        except (ModelLoadError, EngineError, OSError, RuntimeError) as exc:
            self.error = str(exc)
            log.error("model failed to load: %s", exc)
            return
        self.load_seconds = time.monotonic() - t0
        self.ready = True
        self.metrics.ready.set(1)
        log.info(
            "model ready in %.1fs (sample rate %d Hz, voices: %s)",
            self.load_seconds,
            self.engine.sample_rate,
            ", ".join(v.id for v in self.engine.voices()),
        )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        limit = self.settings.max_concurrency + self.settings.max_queue
        if self.inflight + self.queued >= limit:
            raise ApiError(
                429,
                f"server busy: {self.inflight} in flight and {self.queued} queued",
                "rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        self.queued += 1
        self.metrics.queued.inc()
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
            self.metrics.queued.dec()
        self.inflight += 1
        self.metrics.inflight.inc()
        try:
            yield
        finally:
            self.inflight -= 1
            self.metrics.inflight.dec()
            self._slots.release()

    async def chunks(self, text: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        """Sentence chunks, synthesised one at a time in a worker thread; stops when the consumer does."""
        it = iter(self.engine.synthesize(text, voice, speed))
        t0 = time.monotonic()
        first = True
        while True:
            chunk = await asyncio.to_thread(next, it, None)
            if chunk is None:
                return
            if first:
                self.metrics.latency.observe(time.monotonic() - t0)
                first = False
            self.metrics.audio_seconds.inc(len(chunk) / self.engine.sample_rate)
            yield chunk


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        host = EngineHost(settings, metrics)
        app.state.host = host
        loader = asyncio.create_task(host.load())
        yield
        loader.cancel()

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
        return {
            "engine": settings.engine,
            "model": settings.model_uri,
            "device": host.engine.device,
            "ready": host.ready,
            "error": host.error,
            "sample_rate": host.engine.sample_rate if host.ready else None,
            "inflight_requests": host.inflight,
            "queued_requests": host.queued,
        }

    @app.get("/v1/audio/voices", tags=["speech"])
    async def voices(request: Request) -> dict:
        host = host_of(request)
        if not host.ready:
            raise ApiError(503, "model is not loaded yet", "model_not_ready", headers={"Retry-After": "2"})
        return {
            "object": "list",
            "default": host.engine.default_voice,
            "data": [{"id": v.id, "name": v.name, "language": v.language} for v in host.engine.voices()],
        }

    @app.post(
        "/v1/audio/speech",
        tags=["speech"],
        response_class=Response,
        responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
    )
    async def speech(body: SpeechRequest, request: Request) -> Response:
        host = host_of(request)
        if not host.ready:
            metrics.requests.labels("503").inc()
            raise ApiError(503, "model is not loaded yet", "model_not_ready", headers={"Retry-After": "2"})
        if len(body.input) > settings.max_input_chars:
            raise ApiError(
                400,
                f"input is {len(body.input)} characters; the limit is {settings.max_input_chars}",
                "input_too_long",
                "input",
            )
        if body.ref_audio:
            raise ApiError(
                400,
                f"engine {settings.engine} cannot clone voices; ref_audio is not accepted",
                "cloning_not_supported",
                "ref_audio",
            )
        if body.response_format not in audio.SUPPORTED:
            raise ApiError(
                400,
                f"response_format {body.response_format!r} is not supported yet; use one of "
                f"{', '.join(sorted(audio.SUPPORTED))}",
                "unsupported_format",
                "response_format",
            )
        if body.stream_format != "audio":
            raise ApiError(
                400, "stream_format 'sse' is not supported yet", "unsupported_stream_format", "stream_format"
            )
        try:
            voice = host.engine.resolve_voice(body.voice)
        except EngineError as exc:
            raise ApiError(400, str(exc), "voice_not_found", "voice") from exc
        rate = host.engine.sample_rate
        headers = {"X-Sample-Rate": str(rate)}
        if body.response_format == "pcm":
            # raw s16le streams sentence by sentence
            async def stream() -> AsyncIterator[bytes]:
                async with host.slot():
                    async for chunk in host.chunks(body.input, voice, body.speed):
                        yield audio.encode(chunk, rate, "pcm")
                metrics.requests.labels("200").inc()

            return StreamingResponse(stream(), media_type=MEDIA_TYPES["pcm"], headers=headers)
        async with host.slot():
            parts = [c async for c in host.chunks(body.input, voice, body.speed)]
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        data = await asyncio.to_thread(audio.encode, samples, rate, body.response_format)
        metrics.requests.labels("200").inc()
        return Response(data, media_type=MEDIA_TYPES[body.response_format], headers=headers)

    return app
