"""The MCP wiring: tools whose signatures are their schemas, each a thin call into :class:`RouterClient`.

``create_server(settings)`` builds the server; nothing happens at import time. The HTTP client
lives in the server's lifespan. Router and file failures become tool errors (``isError``) whose
text says what to do; anything else is the SDK's generic "Error executing tool" (details stay in
the server's log).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import AudioContent, CallToolResult, ContentBlock, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tts_crds.speech import MEDIA_TYPES, ResponseFormat

from .files import FileRefused, decode_clip, read_clip, save_speech, speech_filename
from .models import (
    CreatedVoice,
    DeletedVoice,
    GpuStatus,
    ModelInfo,
    ModelList,
    ScaleResult,
    SpeechResult,
    VoiceInfo,
    VoiceList,
)
from .router import HTTP_AUTH_HINTS, AuthHints, RouterClient, RouterError, SpeechAudio, SpeechStatus
from .settings import McpSettings

INSTRUCTIONS = """\
kube-tts speaks text with the text-to-speech models of a Kubernetes cluster.
- synthesize_speech(text) returns the audio; pick a model from list_models and a voice from list_voices.
  A model at zero replicas wakes on the first request (seconds to minutes): progress is reported meanwhile.
- create_voice uploads a reference clip (wav/flac, 1-30 s, with the speaker's consent) as a new voice;
  only cloning engines (pocket-tts) can speak with such a voice.
- sleep_model frees a model's GPUs now; wake_model starts it ahead of traffic; get_gpu_status shows GPU use.
"""


def hints(read_only: bool = False, destructive: bool = False, idempotent: bool = False) -> ToolAnnotations:
    """Tool annotations, all stated (the protocol's defaults assume destructive); none reach outside the cluster."""
    return ToolAnnotations(
        read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=False
    )


READ_ONLY = hints(read_only=True, idempotent=True)


@dataclass
class Backend:
    """What the tools share for the server's lifetime."""

    settings: McpSettings
    http: httpx.AsyncClient


def bearer_token(headers: Mapping[str, str] | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header, or None."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def router_for(backend: Backend, headers: Mapping[str, str] | None) -> RouterClient:
    """The router client for one call: over HTTP the caller's own key (never the server's), else the configured keys."""
    settings = backend.settings
    if settings.transport == "http":
        key = bearer_token(headers)
        if key is None:
            raise ToolError("no API key: connect with 'Authorization: Bearer <router API key>'")
        return RouterClient(backend.http, settings.url, key, key, HTTP_AUTH_HINTS)
    return RouterClient(
        backend.http,
        settings.url,
        settings.api_key.get_secret_value(),
        settings.admin_api_key.get_secret_value(),
        AuthHints(),
    )


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """Failures an agent can act on, as tool errors (isError) with the reason in the text."""
    try:
        yield
    except (RouterError, FileRefused) as exc:
        raise ToolError(str(exc)) from exc


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


def describe_speech(result: SpeechResult) -> str:
    length = f"{result.audio_seconds:.1f} s of audio" if result.audio_seconds is not None else "audio"
    text = (
        f"Spoke {length} ({result.format}, {result.bytes} bytes) with model {result.model!r}, voice {result.voice!r}."
    )
    if result.woke_model:
        text += f" The model was asleep and woke up in {result.waited_seconds:.1f} s."
    if result.file:
        text += f" Saved to {result.file}."
    return text


def speech_content(result: SpeechResult, audio: bytes, mode: str) -> list[ContentBlock]:
    blocks: list[ContentBlock] = []
    if mode in ("inline", "both"):
        blocks.append(AudioContent(data=base64.b64encode(audio).decode(), mime_type=result.mime_type))
    if result.file:
        name = result.file.rsplit("/", 1)[-1]
        blocks.append(
            ResourceLink(
                uri=Path(result.file).as_uri(),
                name=name,
                title=f"Speech by {result.model}",
                mime_type=result.mime_type,
                size=result.bytes,
            )
        )
    blocks.append(TextContent(text=describe_speech(result)))
    return blocks


def create_server(settings: McpSettings, transport: httpx.AsyncBaseTransport | None = None) -> MCPServer[Backend]:
    """The kube-tts MCP server. ``transport`` replaces the network (tests use a fake router)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Backend]) -> AsyncIterator[Backend]:
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
            yield Backend(settings, http)

    server: MCPServer[Backend] = MCPServer(
        "kube-tts",
        title="kube-tts",
        description="Text-to-speech on Kubernetes: speak, manage voices, sleep and wake models.",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        lifespan=lifespan,
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
    )

    def router(ctx: Context[Backend, Any]) -> RouterClient:
        return router_for(ctx.request_context.lifespan_context, ctx.headers)

    @server.tool(
        title="Speak text",
        annotations=hints(),
    )
    async def synthesize_speech(
        text: Annotated[str, Field(description="The text to speak.", min_length=1)],
        ctx: Context[Backend, Any],
        voice: Annotated[
            str | None, Field(description="A voice of the model (list_voices); default: the model's default.")
        ] = None,
        model: Annotated[
            str | None, Field(description="The model (list_models); default: the configured or the only model.")
        ] = None,
        format: Annotated[
            ResponseFormat | None, Field(description="Audio format; default mp3 (or the server's setting).")
        ] = None,
        speed: Annotated[float | None, Field(ge=0.25, le=4.0, description="Speaking speed, 0.25 to 4.")] = None,
    ) -> Annotated[CallToolResult, SpeechResult]:
        """Speak text aloud with a model of the cluster and return the audio.

        A model that sleeps (zero replicas) wakes up first; progress notifications report the wait.
        """
        with tool_errors():
            client = router(ctx)
            if not model and not settings.default_model:
                listed = [ModelInfo.from_router(m) for m in await client.list_models()]
            else:
                listed = []
            chosen = pick_model(model, settings.default_model, listed)
            fmt = format or settings.default_format
            request: dict[str, Any] = {"model": chosen, "input": text, "response_format": fmt}
            if voice:
                request["voice"] = voice
            if speed is not None:
                request["speed"] = speed
            step = 0

            async def progress(status: SpeechStatus) -> None:
                nonlocal step
                step += 1
                await ctx.report_progress(step, None, status.describe())

            audio: SpeechAudio = await client.speak(request, progress)
            saved = None
            if settings.output_mode != "inline":
                assert settings.output_dir is not None  # the settings validator makes sure
                try:
                    saved = save_speech(
                        settings.output_dir, speech_filename(chosen, voice or "default", fmt), audio.data
                    )
                except OSError as exc:
                    raise ToolError(
                        f"the audio could not be saved under {settings.output_dir}: {exc.strerror}"
                    ) from exc
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
        return CallToolResult(
            content=speech_content(result, audio.data, settings.output_mode),
            structured_content=result.model_dump(mode="json"),
        )

    @server.tool(title="List models", annotations=READ_ONLY)
    async def list_models(ctx: Context[Backend, Any]) -> ModelList:
        """The text-to-speech models of the cluster, with readiness, replicas and voices.

        A model with replicas 0 sleeps; synthesize_speech or wake_model wakes it.
        """
        with tool_errors():
            return ModelList(models=[ModelInfo.from_router(m) for m in await router(ctx).list_models()])

    @server.tool(title="List voices", annotations=READ_ONLY)
    async def list_voices(
        ctx: Context[Backend, Any],
        model: Annotated[str | None, Field(description="Only this model's voices.")] = None,
    ) -> VoiceList:
        """The voices each model speaks: its built-in speakers and the custom voices of the cluster."""
        with tool_errors():
            return VoiceList(voices=[VoiceInfo.from_router(v) for v in await router(ctx).list_voices(model)])

    @server.tool(
        title="Create a voice from a clip",
        annotations=hints(),
    )
    async def create_voice(
        name: Annotated[str, Field(description="The new voice's name: lower-case letters, digits and '-'.")],
        model: Annotated[str, Field(description="The model that will speak with the voice.")],
        ctx: Context[Backend, Any],
        audio_path: Annotated[
            str | None,
            Field(description="Absolute path of a wav/flac clip (1-30 s) in a directory the server allows."),
        ] = None,
        audio_base64: Annotated[
            str | None, Field(description="The clip itself, base64 (instead of audio_path).")
        ] = None,
        transcript: Annotated[str, Field(description="What is said in the clip.")] = "",
        language: Annotated[str, Field(description="BCP 47 language tag of the clip.")] = "en",
        consent: Annotated[
            bool, Field(description="True only if the person whose voice it is agreed to it being cloned.")
        ] = False,
        description: str = "",
    ) -> CreatedVoice:
        """Upload a reference clip as a new custom voice of a model (needs an admin key).

        Give exactly one of audio_path or audio_base64. Only engines that clone (pocket-tts) can speak
        with a clip voice; other models answer that cloning is not supported.
        """
        with tool_errors():
            if (audio_path is None) == (audio_base64 is None):
                raise ToolError("give exactly one of audio_path or audio_base64")
            if audio_path is not None:
                data, filename = read_clip(audio_path, settings.audio_dirs, settings.max_voice_bytes)
            else:
                data, filename = decode_clip(audio_base64 or "", settings.max_voice_bytes), "clip"
            created = await router(ctx).create_voice(
                name, model, data, filename, transcript, language, consent, description
            )
            note = (
                f"speak with synthesize_speech(model={model!r}, voice={name!r}); "
                "only cloning engines (pocket-tts) can use a reference clip"
            )
            return CreatedVoice.from_router(created, note)

    @server.tool(
        title="Delete a voice",
        annotations=hints(destructive=True, idempotent=True),
    )
    async def delete_voice(
        name: Annotated[str, Field(description="A custom voice (list_voices type speaker or clone).")],
        ctx: Context[Backend, Any],
    ) -> DeletedVoice:
        """Delete a custom voice and its stored clip (needs an admin key). Built-in speakers cannot be deleted."""
        with tool_errors():
            answer = await router(ctx).delete_voice(name)
            return DeletedVoice(name=answer.get("id", name), deleted=bool(answer.get("deleted")))

    @server.tool(title="GPU status", annotations=READ_ONLY)
    async def get_gpu_status(ctx: Context[Backend, Any]) -> GpuStatus:
        """GPU capacity and use per node, and each model's replicas, pods and GPU memory."""
        with tool_errors():
            return GpuStatus.from_router(await router(ctx).status())

    @server.tool(
        title="Put a model to sleep",
        annotations=hints(destructive=True, idempotent=True),
    )
    async def sleep_model(
        name: Annotated[str, Field(description="The model to scale to zero (list_models).")],
        ctx: Context[Backend, Any],
    ) -> ScaleResult:
        """Scale a model to zero replicas now, freeing its GPUs (needs an admin key).

        Requests in progress on its replicas are cut off; the next request wakes the model again.
        """
        with tool_errors():
            return ScaleResult.from_router(name, "sleep", await router(ctx).scale(name, "sleep"))

    @server.tool(
        title="Wake a model",
        annotations=hints(idempotent=True),
    )
    async def wake_model(
        name: Annotated[str, Field(description="The model to start (list_models).")],
        ctx: Context[Backend, Any],
    ) -> ScaleResult:
        """Start a sleeping model ahead of traffic (needs an admin key); list_models shows when it is ready."""
        with tool_errors():
            return ScaleResult.from_router(name, "wake", await router(ctx).scale(name, "wake"))

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return server
