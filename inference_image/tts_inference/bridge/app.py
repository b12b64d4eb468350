"""The bridge's endpoints: kube-tts's inference API (health, readiness, status, voices, speech) over a
user's speech server on the pod's loopback (ADR 0047). The router sees an inference pod like any other."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from tts_crds import events, http_errors
from tts_crds.http_errors import ApiError, error_body
from tts_crds.speech import MEDIA_TYPES, SpeechRequest

from . import convert, upstream
from .settings import BridgeSettings
from .voices import listing, normalise

log = logging.getLogger("tts_inference.bridge")


class Bridge:
    """What the endpoints share: the settings, the client for the server, its voices, its failures."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.server = settings.server_spec()
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.server.port}",
            timeout=httpx.Timeout(settings.read_timeout, connect=2.0),
            trust_env=False,
        )
        self.failures = upstream.Failures()
        self._voices: list[dict[str, str]] | None = None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kubetts_bridge_requests",
            "Speech requests the bridge answered, by status",
            ["code"],
            registry=self.registry,
        )

    async def ready(self) -> str | None:
        """None when the server's ready path answers 2xx, else why not."""
        tripped = self.failures.tripped()
        if tripped:
            return tripped
        path = self.server.paths.ready or self.server.paths.health
        try:
            resp = await self.client.get(path, timeout=2.0)
        except httpx.HTTPError as exc:
            return f"the server does not answer {path} ({exc.__class__.__name__})"
        return None if resp.status_code < 300 else f"the server answers {path} with {resp.status_code}"

    async def voices(self) -> list[dict[str, str]]:
        if self._voices is not None:
            return self._voices
        if not self.server.paths.voices:
            self._voices = [{"id": v, "name": v} for v in self.server.voices]
            return self._voices
        try:
            resp = await self.client.get(self.server.paths.voices, timeout=5.0)
            found = normalise(resp.json()) if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            why = f"the server's voices are not available ({exc.__class__.__name__})"
            raise ApiError(503, why, "model_not_ready", headers={"Retry-After": "2"}) from exc
        if found is None:
            self.failures.failed(f"{self.server.paths.voices} answered {resp.status_code} with no voice list")
            raise ApiError(502, f"the server's {self.server.paths.voices} gave no voice list", "server_error")
        self._voices = found or [{"id": v, "name": v} for v in self.server.voices]
        return self._voices

    @property
    def can_clone(self) -> bool:
        return self.server.api == "tts-api" and bool(self.server.tts_api and self.server.tts_api.reference_audio_field)

    def reference_clip(self, body: SpeechRequest) -> bytes | None:
        """The request's reference clip (a cloned voice's, sent by the router), for a server that takes one."""
        if body.ref_audio is None:
            return None
        if not self.can_clone:
            raise ApiError(400, "this model's speech server cannot clone voices", "cloning_unsupported", "ref_audio")
        try:
            return base64.b64decode(body.ref_audio, validate=True)
        except binascii.Error as exc:
            raise ApiError(400, "ref_audio is not base64", "invalid_ref_audio", "ref_audio") from exc

    async def default_voice(self) -> str:
        if self.server.default_voice:
            return self.server.default_voice
        known = await self.voices()
        return known[0]["id"] if known else "default"

    async def voice_for(self, requested: str) -> str:
        if requested == "default":
            return await self.default_voice()
        known = await self.voices()
        if known and requested not in {v["id"] for v in known}:
            names = ", ".join(v["id"] for v in known[:20])
            raise ApiError(
                400, f"voice {requested!r} is not one of the server's voices ({names})", "voice_not_found", "voice"
            )
        return requested


def bridge_of(request: Request) -> Bridge:
    bridge: Bridge = request.app.state.bridge
    return bridge


async def _with_head(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def _checked(resp: httpx.Response, bridge: Bridge, source: str) -> AsyncIterator[bytes]:
    """The server's audio, its first bytes checked before anything is sent on."""
    chunks = upstream.audio_bytes(resp, bridge.server)
    head = await anext(chunks, b"")
    decoded_json = bridge.server.api == "tts-api" and resp.headers.get("content-type", "").startswith(
        "application/json"
    )
    convert.check_audio(source, head, "" if decoded_json else resp.headers.get("content-type", ""))
    return _with_head(head, chunks)


async def _audio(bridge: Bridge, body: SpeechRequest) -> tuple[AsyncIterator[bytes], httpx.Response, str | None]:
    """The answer in the wanted format, its first piece already produced (so failures are still clean errors)."""
    server = bridge.server
    source = convert.source_format(body.response_format, server.formats, server.sample_rate)
    clip = bridge.reference_clip(body)
    voice = await bridge.voice_for(body.voice) if clip is None else "default"
    try:
        resp = await upstream.open_speech(
            bridge.client, server, upstream.request_body(server, body, voice, source, clip)
        )
    except ApiError as exc:
        if exc.status >= 500:
            bridge.failures.failed(exc.message)
        raise
    try:
        chunks = await _checked(resp, bridge, source)
        rate = resp.headers.get("x-sample-rate") or (str(server.sample_rate) if server.sample_rate else None)
        if source != body.response_format:
            converter = convert.Converter(source, body.response_format, server.sample_rate)
            chunks = converter.run(chunks)
        first = await anext(chunks, b"")
        if source != body.response_format:
            rate = str(converter.rate) if converter.rate else None
    except convert.NotAudio as exc:
        await resp.aclose()
        bridge.failures.failed(str(exc))
        raise ApiError(502, str(exc), "server_not_audio") from exc
    except httpx.HTTPError as exc:
        await resp.aclose()
        bridge.failures.failed(f"the server's answer broke ({exc.__class__.__name__})")
        raise ApiError(502, f"the speech server's answer broke ({exc.__class__.__name__})", "server_error") from exc
    return _with_head(first, chunks), resp, rate


async def _relay(chunks: AsyncIterator[bytes], resp: httpx.Response, bridge: Bridge) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            if chunk:
                yield chunk
        bridge.failures.ok()
        bridge.requests.labels("200").inc()
    except (convert.NotAudio, httpx.HTTPError) as exc:
        bridge.failures.failed(f"the server's answer broke off: {exc}")
        bridge.requests.labels("502").inc()
        raise
    finally:
        await resp.aclose()


async def _sse(chunks: AsyncIterator[bytes], body: SpeechRequest) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield events.AudioDelta.of(chunk).frame()
        yield events.AudioDone(usage=events.Usage.of_text(body.input)).frame()
    except (convert.NotAudio, httpx.HTTPError) as exc:
        yield events.ErrorEvent.of(error_body(f"the speech server failed: {exc}", "server_error", None, 502)).frame()


def create_app(settings: BridgeSettings | None = None) -> FastAPI:
    settings = settings or BridgeSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bridge = Bridge(settings)
        yield
        await app.state.bridge.client.aclose()

    app = FastAPI(title="kube-tts bridge", lifespan=lifespan)
    http_errors.install(app)
    _routes(app)
    return app


def _routes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        why = await bridge_of(request).ready()
        return JSONResponse(
            {"status": "ready"} if why is None else {"status": "loading", "error": why}, 200 if why is None else 503
        )

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(bridge_of(request).registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/status")
    async def status(request: Request) -> dict[str, object]:
        bridge = bridge_of(request)
        why = await bridge.ready()
        return {
            "engine": bridge.settings.engine,
            "model": bridge.settings.model_uri,
            "capabilities": ["speech"],
            "ready": why is None,
            "error": why or bridge.failures.last_error,
            "can_clone": bridge.can_clone,
            "parameters": [],
            "details": {"api": bridge.server.api, "formats": bridge.server.formats, "streams": bridge.server.streams},
            "server_errors": bridge.failures.errors,
            "server_answers": bridge.failures.answered,
        }

    @app.get("/v1/audio/voices")
    async def voices(request: Request) -> dict[str, object]:
        bridge = bridge_of(request)
        return {**listing(await bridge.voices(), await bridge.default_voice()), "can_clone": bridge.can_clone}

    @app.post("/v1/audio/speech", response_class=Response)
    async def speech(body: SpeechRequest, request: Request) -> Response:
        bridge = bridge_of(request)
        chunks, resp, rate = await _audio(bridge, body)
        relayed = _relay(chunks, resp, bridge)
        headers = {"Cache-Control": "no-store", **({"X-Sample-Rate": rate} if rate else {})}
        if body.stream_format == "sse":
            return StreamingResponse(_sse(relayed, body), media_type=events.MEDIA_TYPE, headers=headers)
        return StreamingResponse(relayed, media_type=MEDIA_TYPES[body.response_format], headers=headers)
