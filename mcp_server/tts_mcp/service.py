"""What the MCP tools do, as a plain class: :class:`KubeTtsService` calls the router through
:class:`~.router.RouterClient` and returns the tools' result models. No MCP wiring here (that is
``server.py``); refusals an agent can act on are ``ToolError``, ``RouterError`` or ``FileRefused``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from mcp.server.mcpserver.exceptions import ToolError
from tts_crds import wav
from tts_crds.speech import MEDIA_TYPES, ResponseFormat

from .files import decode_clip, read_clip, save_speech, speech_filename
from .models import (
    CreatedVoice,
    DeletedVoice,
    GpuStatus,
    ModelInfo,
    ModelList,
    ScaleResult,
    SpeechResult,
    Transcription,
    VoiceInfo,
    VoiceList,
)
from .router import HTTP_AUTH_HINTS, AuthHints, RouterClient, SpeechAudio, SpeechStatus
from .settings import McpSettings

Headers = Mapping[str, str] | None
Progress = Callable[[SpeechStatus], Awaitable[None]]


def bearer_token(headers: Headers) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header, or None."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def pick_model(requested: str | None, default: str, models: list[ModelInfo]) -> str:
    """The model to speak with: the requested one, else the configured default, else the only one there is."""
    if requested:
        return requested
    if default:
        return default
    if len(models) == 1:
        return models[0].name
    if not models:
        raise ToolError("no text-to-speech model is deployed in the cluster (list_models is empty)")
    listed = ", ".join(m.name + (" (ready)" if m.ready else "") for m in models)
    raise ToolError(f"several models exist; pass model= one of: {listed}")


def mime_type(fmt: str, sample_rate: int | None) -> str:
    if fmt == "pcm":
        return f"audio/L16;rate={sample_rate};channels=1" if sample_rate else "audio/L16;channels=1"
    return MEDIA_TYPES.get(fmt, "application/octet-stream")


@dataclass
class KubeTtsService:
    """The tools' logic for the server's lifetime: the settings and one HTTP client."""

    settings: McpSettings
    http: httpx.AsyncClient

    def router(self, headers: Headers) -> RouterClient:
        return router_for(self, headers)

    async def synthesize(
        self,
        headers: Headers,
        text: str,
        voice: str | None,
        model: str | None,
        fmt: ResponseFormat | None,
        speed: float | None,
        progress: Progress,
    ) -> tuple[SpeechResult, bytes]:
        settings = self.settings
        client = self.router(headers)
        listed = (
            [] if model or settings.default_model else [ModelInfo.from_router(m) for m in await client.list_models()]
        )
        chosen = pick_model(model, settings.default_model, listed)
        fmt = fmt or settings.default_format
        request: dict[str, Any] = {"model": chosen, "input": text, "response_format": fmt}
        if voice:
            request["voice"] = voice
        if speed is not None:
            request["speed"] = speed
        audio: SpeechAudio = await client.speak(request, progress)
        if fmt == "wav":  # streamed (SSE) with the unknown-length sizes: a saved file states its length
            audio.data = wav.with_true_sizes(audio.data)
        saved = None
        if settings.output_mode != "inline":
            assert settings.output_dir is not None  # the settings validator makes sure
            try:
                saved = save_speech(settings.output_dir, speech_filename(chosen, voice or "default", fmt), audio.data)
            except OSError as exc:
                raise ToolError(f"the audio could not be saved under {settings.output_dir}: {exc.strerror}") from exc
        result = SpeechResult(
            model=chosen,
            voice=voice or "default",
            format=fmt,
            mime_type=mime_type(fmt, audio.sample_rate),
            bytes=len(audio.data),
            sample_rate=audio.sample_rate,
            audio_seconds=audio.audio_seconds,
            woke_model=audio.woke_model,
            waited_seconds=round(audio.waited_seconds, 2),
            file=str(saved) if saved else None,
        )
        return result, audio.data

    async def list_models(self, headers: Headers) -> ModelList:
        return ModelList(models=[ModelInfo.from_router(m) for m in await self.router(headers).list_models()])

    async def list_voices(self, headers: Headers, model: str | None) -> VoiceList:
        return VoiceList(voices=[VoiceInfo.from_router(v) for v in await self.router(headers).list_voices(model)])

    async def create_voice(
        self,
        headers: Headers,
        name: str,
        model: str,
        audio_path: str | None,
        audio_base64: str | None,
        transcript: str,
        language: str,
        consent: bool,
        description: str,
    ) -> CreatedVoice:
        data, filename = self.clip(audio_path, audio_base64, self.settings.max_voice_bytes)
        created = await self.router(headers).create_voice(
            name, model, data, filename, transcript, language, consent, description
        )
        note = (
            f"speak with synthesize_speech(model={model!r}, voice={name!r}); "
            "only cloning engines (pocket-tts) can use a reference clip"
        )
        if not transcript.strip():
            note += "; the transcription model transcribes the clip shortly (list_voices shows the transcript)"
        return CreatedVoice.from_router(created, note)

    def clip(self, audio_path: str | None, audio_base64: str | None, limit: int) -> tuple[bytes, str]:
        """The audio a tool was given, by path (inside the allowed folders) or as base64: exactly one."""
        if (audio_path is None) == (audio_base64 is None):
            raise ToolError("give exactly one of audio_path or audio_base64")
        if audio_path is not None:
            return read_clip(audio_path, self.settings.audio_dirs, limit)
        return decode_clip(audio_base64 or "", limit), "clip"

    async def transcribe(
        self, headers: Headers, audio_path: str | None, audio_base64: str | None, model: str, language: str | None
    ) -> Transcription:
        data, filename = self.clip(audio_path, audio_base64, self.settings.max_transcription_bytes)
        return Transcription.from_router(model, await self.router(headers).transcribe(data, filename, model, language))

    async def delete_voice(self, headers: Headers, name: str) -> DeletedVoice:
        answer = await self.router(headers).delete_voice(name)
        return DeletedVoice(name=answer.get("id", name), deleted=bool(answer.get("deleted")))

    async def gpu_status(self, headers: Headers) -> GpuStatus:
        return GpuStatus.from_router(await self.router(headers).status())

    async def scale(self, headers: Headers, name: str, action: Literal["sleep", "wake"]) -> ScaleResult:
        return ScaleResult.from_router(name, action, await self.router(headers).scale(name, action))


def router_for(service: KubeTtsService, headers: Headers) -> RouterClient:
    """The router client for one call: over HTTP the caller's own key (never the server's), else the configured keys."""
    settings = service.settings
    if settings.transport == "http":
        key = bearer_token(headers)
        if key is None:
            raise ToolError("no API key: connect with 'Authorization: Bearer <router API key>'")
        return RouterClient(service.http, settings.url, key, key, HTTP_AUTH_HINTS)
    return RouterClient(
        service.http,
        settings.url,
        settings.api_key.get_secret_value(),
        settings.admin_api_key.get_secret_value(),
        AuthHints(),
    )
