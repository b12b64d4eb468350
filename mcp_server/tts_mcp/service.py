"""What the MCP tools do, as a plain class: :class:`KubeTtsService` calls the router through
:class:`~.router.RouterClient` and returns the tools' result models. No MCP wiring here (that is
``server.py``); refusals an agent can act on are ``ToolError``, ``RouterError`` or ``FileRefused``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from mcp.server.mcpserver.exceptions import ToolError
from tts_crds import wav
from tts_crds.jobs import MAX_TEXT_CHARACTERS, ChapterSplit, JobFormat
from tts_crds.speech import MEDIA_TYPES, ResponseFormat, SpeechRole

from .files import decode_clip, read_clip, save_speech, speech_filename
from .models import (
    CreatedVoice,
    DeletedVoice,
    GpuStatus,
    ModelInfo,
    ModelList,
    ProductionInfo,
    ProductionList,
    ProductionSummary,
    RoleVoice,
    ScaleResult,
    ScriptLine,
    SpeechResult,
    Transcription,
    VoiceInfo,
    VoiceList,
)
from .router import HTTP_AUTH_HINTS, AuthHints, RouterClient, SpeechAudio, SpeechStatus
from .settings import McpSettings

Headers = Mapping[str, str] | None
Progress = Callable[[SpeechStatus], Awaitable[None]]
ProductionProgress = Callable[[ProductionInfo], Awaitable[None]]


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


def production_body(
    model: str,
    text: str | None,
    script: list[ScriptLine] | None,
    roles: dict[str, RoleVoice] | None,
    voice: str | None,
    fmt: JobFormat | None,
    chapters: ChapterSplit | None,
    name: str | None,
    parallelism: int | None,
) -> dict[str, Any]:
    """The router's job request (camelCase, as the TtsJob spells it): a text with roles is a
    'Role: line' script; the router checks everything else and names the field it refuses."""
    if (text is None) == (script is None):
        raise ToolError("give exactly one of text or script")
    body: dict[str, Any] = {"deployment": model}
    if name:
        body["name"] = name
    if text is not None:
        body["text"] = text
        if roles:
            body["textFormat"] = "script"
    if script is not None:
        body["script"] = [
            {"role": line.role, "text": line.text}
            | ({"pauseAfterMs": line.pause_after_ms} if line.pause_after_ms is not None else {})
            for line in script
        ]
    if roles:
        body["roles"] = {
            role: {"voice": r.voice, **({"deployment": r.model} if r.model else {})} for role, r in roles.items()
        }
    if voice:
        body["voice"] = voice
    if fmt:
        body["format"] = fmt
    if chapters:
        body["chapters"] = {"split": chapters.value}
    if parallelism is not None:
        body["parallelism"] = parallelism
    return body


def upload_fields(body: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """A job request as multipart fields (for a text too long to inline): the text and the other fields
    as strings (roles and chapters as JSON)."""
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items() if k != "text"}
    return str(body["text"]), fields


@dataclass
class KubeTtsService:
    """The tools' logic for the server's lifetime: the settings and one HTTP client (and, for waiting
    on a production, a clock and a sleep that tests may replace)."""

    settings: McpSettings
    http: httpx.AsyncClient
    clock: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)

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
        roles: dict[str, SpeechRole] | None = None,
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
        if roles is not None:
            request["roles"] = {name: role.model_dump(exclude_none=True) for name, role in roles.items()}
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

    async def start_production(
        self,
        headers: Headers,
        text: str | None,
        script: list[ScriptLine] | None,
        roles: dict[str, RoleVoice] | None,
        model: str | None,
        voice: str | None,
        fmt: JobFormat | None,
        chapters: ChapterSplit | None,
        name: str | None,
        parallelism: int | None,
    ) -> ProductionInfo:
        client = self.router(headers)
        default = self.settings.default_model
        listed = [] if model or default else [ModelInfo.from_router(m) for m in await client.list_models()]
        chosen = pick_model(model, default, [m for m in listed if m.capability == "speech"])
        body = production_body(chosen, text, script, roles, voice, fmt, chapters, name, parallelism)
        if text is not None and len(text) > MAX_TEXT_CHARACTERS:
            created = await client.upload_job(*upload_fields(body))
        else:
            created = await client.create_job(body)
        return ProductionInfo.from_router(created, client.url)

    async def list_productions(self, headers: Headers) -> ProductionList:
        jobs = await self.router(headers).list_jobs()
        return ProductionList(productions=[ProductionSummary.from_router(j) for j in jobs])

    async def get_production(
        self, headers: Headers, name: str, wait: bool, wait_seconds: float, progress: ProductionProgress
    ) -> ProductionInfo:
        """The production's state; with ``wait``, polled (each poll reported) until it is Complete or
        Failed or ``wait_seconds`` (at most the configured maximum) have passed."""
        client = self.router(headers)
        deadline = self.clock() + min(wait_seconds, self.settings.production_max_wait_seconds)
        while True:
            info = ProductionInfo.from_router(await client.get_job(name), client.url)
            if not wait:
                return info
            await progress(info)  # the last one too: a client's progress bar ends full (or where it failed)
            if info.finished:
                return info
            if self.clock() >= deadline:
                return info.model_copy(update={"timed_out": True})
            await self.sleep(min(self.settings.production_poll_seconds, max(deadline - self.clock(), 0.0)))


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
