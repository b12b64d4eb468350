"""The MCP wiring: tools whose signatures are their schemas, each a thin call into :class:`KubeTtsService`.

``create_server(settings)`` builds the server and registers the tools; nothing happens at import
time. The service and its HTTP client live in the server's lifespan. Router and file failures
become tool errors (``isError``) whose text says what to do; anything else is the SDK's generic
"Error executing tool" (details stay in the server's log).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import AudioContent, CallToolResult, ContentBlock, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tts_crds.jobs import ChapterSplit, JobFormat
from tts_crds.speech import ResponseFormat, SpeechRole

from .files import FileRefused
from .models import (
    CreatedVoice,
    DeletedVoice,
    GpuStatus,
    ModelList,
    ProductionInfo,
    ProductionList,
    RoleVoice,
    ScaleResult,
    ScriptLine,
    SpeechResult,
    Transcription,
    VoiceList,
)
from .router import RouterError, SpeechStatus
from .service import KubeTtsService
from .settings import McpSettings

INSTRUCTIONS = """\
kube-tts speaks text with the text-to-speech models of a Kubernetes cluster.
- synthesize_speech(text) returns the audio; pick a model from list_models and a voice from list_voices.
  With roles it speaks a short 'Role: line' script in several voices (and models) as one stream.
  A model at zero replicas wakes on the first request (seconds to minutes): progress is reported meanwhile.
- create_voice uploads a reference clip (wav/flac, 1-30 s, with the speaker's consent) as a new voice;
  only cloning engines (pocket-tts) can speak with such a voice. Left without a transcript, the clip is
  transcribed by the cluster's transcription model (list_voices shows it).
- transcribe_audio(audio) writes down what is said in an audio file (a model with capability transcription).
- start_production renders a long text (a book: chapters) or a multi-role script (a podcast) to audio
  files in the cluster (needs an admin key); get_production(name, wait=true) reports progress until
  it is done and lists the chapter files to download; list_productions shows them all.
- sleep_model frees a model's GPUs now; wake_model starts it ahead of traffic; get_gpu_status shows GPU use.
"""

Ctx = Context[KubeTtsService, Any]


def hints(read_only: bool = False, destructive: bool = False, idempotent: bool = False) -> ToolAnnotations:
    """Tool annotations, all stated (the protocol's defaults assume destructive); none reach outside the cluster."""
    return ToolAnnotations(
        read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=False
    )


READ_ONLY = hints(read_only=True, idempotent=True)


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """Failures an agent can act on, as tool errors (isError) with the reason in the text."""
    try:
        yield
    except (RouterError, FileRefused) as exc:
        raise ToolError(str(exc)) from exc


def service_of(ctx: Ctx) -> KubeTtsService:
    return ctx.request_context.lifespan_context


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


# --- the tools: signatures are the schemas, docstrings the descriptions ------------------------


async def synthesize_speech(
    text: Annotated[str, Field(description="The text to speak.", min_length=1)],
    ctx: Ctx,
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
    roles: Annotated[
        dict[str, SpeechRole] | None,
        Field(
            description="Speak text as a script of 'Role: line' lines, one line each, in several voices: "
            "each role's voice and, optionally, model (the others use model). One stream; for long scripts "
            "use start_production."
        ),
    ] = None,
) -> Annotated[CallToolResult, SpeechResult]:
    """Speak text aloud with a model of the cluster and return the audio.

    A model that sleeps (zero replicas) wakes up first; progress notifications report the wait.
    With roles, text is a short script ("Alice: Hello.\nBob: Hi.") spoken in each role's voice.
    """
    step = 0

    async def progress(status: SpeechStatus) -> None:
        nonlocal step
        step += 1
        await ctx.report_progress(step, None, status.describe())

    service = service_of(ctx)
    with tool_errors():
        result, audio = await service.synthesize(ctx.headers, text, voice, model, format, speed, progress, roles)
    return CallToolResult(
        content=speech_content(result, audio, service.settings.output_mode),
        structured_content=result.model_dump(mode="json"),
    )


async def list_models(ctx: Ctx) -> ModelList:
    """The text-to-speech models of the cluster, with readiness, replicas and voices.

    A model with replicas 0 sleeps; synthesize_speech or wake_model wakes it.
    """
    with tool_errors():
        return await service_of(ctx).list_models(ctx.headers)


async def list_voices(
    ctx: Ctx,
    model: Annotated[str | None, Field(description="Only this model's voices.")] = None,
) -> VoiceList:
    """The voices each model speaks: its built-in speakers and the custom voices of the cluster."""
    with tool_errors():
        return await service_of(ctx).list_voices(ctx.headers, model)


async def create_voice(
    name: Annotated[str, Field(description="The new voice's name: lower-case letters, digits and '-'.")],
    model: Annotated[str, Field(description="The model that will speak with the voice.")],
    ctx: Ctx,
    audio_path: Annotated[
        str | None,
        Field(description="Absolute path of a wav/flac clip (1-30 s) in a directory the server allows."),
    ] = None,
    audio_base64: Annotated[str | None, Field(description="The clip itself, base64 (instead of audio_path).")] = None,
    transcript: Annotated[
        str, Field(description="What is said in the clip; leave empty to have the transcription model write it.")
    ] = "",
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
        return await service_of(ctx).create_voice(
            ctx.headers, name, model, audio_path, audio_base64, transcript, language, consent, description
        )


async def transcribe_audio(
    ctx: Ctx,
    audio_path: Annotated[
        str | None, Field(description="Absolute path of an audio file in a directory the server allows.")
    ] = None,
    audio_base64: Annotated[str | None, Field(description="The audio itself, base64 (instead of audio_path).")] = None,
    model: Annotated[
        str, Field(description="A transcription model (list_models, capability transcription); whisper-1: the default.")
    ] = "whisper-1",
    language: Annotated[str | None, Field(description="ISO-639-1 code of the speech; detected when unset.")] = None,
) -> Transcription:
    """Write down what is said in an audio file (wav, mp3, ogg, flac…) with a transcription model.

    Give exactly one of audio_path or audio_base64. A sleeping model is woken first (seconds).
    """
    with tool_errors():
        return await service_of(ctx).transcribe(ctx.headers, audio_path, audio_base64, model, language)


async def delete_voice(
    name: Annotated[str, Field(description="A custom voice (list_voices type speaker or clone).")],
    ctx: Ctx,
) -> DeletedVoice:
    """Delete a custom voice and its stored clip (needs an admin key). Built-in speakers cannot be deleted."""
    with tool_errors():
        return await service_of(ctx).delete_voice(ctx.headers, name)


async def get_gpu_status(ctx: Ctx) -> GpuStatus:
    """GPU capacity and use per node, and each model's replicas, pods and GPU memory."""
    with tool_errors():
        return await service_of(ctx).gpu_status(ctx.headers)


async def sleep_model(
    name: Annotated[str, Field(description="The model to scale to zero (list_models).")],
    ctx: Ctx,
) -> ScaleResult:
    """Scale a model to zero replicas now, freeing its GPUs (needs an admin key).

    Requests in progress on its replicas are cut off; the next request wakes the model again.
    """
    with tool_errors():
        return await service_of(ctx).scale(ctx.headers, name, "sleep")


async def wake_model(
    name: Annotated[str, Field(description="The model to start (list_models).")],
    ctx: Ctx,
) -> ScaleResult:
    """Start a sleeping model ahead of traffic (needs an admin key); list_models shows when it is ready."""
    with tool_errors():
        return await service_of(ctx).scale(ctx.headers, name, "wake")


async def start_production(
    ctx: Ctx,
    text: Annotated[
        str | None,
        Field(description="The text: prose, or with roles a script of 'Role: line' lines. Up to ~1 MiB.", min_length=1),
    ] = None,
    script: Annotated[
        list[ScriptLine] | None, Field(description="A structured script instead of text: the lines in order.")
    ] = None,
    roles: Annotated[
        dict[str, RoleVoice] | None, Field(description="The voice (and optionally model) of each role of a script.")
    ] = None,
    model: Annotated[
        str | None, Field(description="The model (list_models) of the text and of roles naming none.")
    ] = None,
    voice: Annotated[str | None, Field(description="The voice of plain text; default: the model's.")] = None,
    format: Annotated[JobFormat | None, Field(description="Format of the chapter files; default mp3.")] = None,
    chapters: Annotated[
        ChapterSplit | None, Field(description="none (one file), headings, sections or size; default none.")
    ] = None,
    name: Annotated[str | None, Field(description="The production's name; default: prod-xxxxx.")] = None,
    parallelism: Annotated[int | None, Field(ge=1, le=32, description="Renderer pods at once; default 1.")] = None,
) -> ProductionInfo:
    """Start rendering a long text or a multi-role script to audio files in the cluster (needs an admin key).

    Give exactly one of text or script. Returns at once with the production's name; follow it with
    get_production(name, wait=true).
    """
    with tool_errors():
        return await service_of(ctx).start_production(
            ctx.headers, text, script, roles, model, voice, format, chapters, name, parallelism
        )


async def get_production(
    name: Annotated[str, Field(description="The production (start_production, list_productions).")],
    ctx: Ctx,
    wait: Annotated[
        bool, Field(description="True: wait until it is Complete or Failed, reporting progress meanwhile.")
    ] = False,
    timeout_seconds: Annotated[
        float, Field(gt=0, le=3600, description="With wait: the longest to wait; then its state so far.")
    ] = 300,
) -> ProductionInfo:
    """A production's phase, progress, and the chapter files written so far (with download URLs).

    With wait=true, progress notifications report chunks done of the total until it finishes.
    """

    async def progress(info: ProductionInfo) -> None:
        done = info.progress.chunks_done if info.progress else 0
        total = info.progress.chunks_total if info.progress and info.progress.chunks_total else None
        what = info.progress.summary if info.progress and info.progress.summary else f"{done} chunks rendered"
        await ctx.report_progress(done, total, f"{info.name}: {info.phase or 'waiting for the operator'}, {what}")

    with tool_errors():
        return await service_of(ctx).get_production(ctx.headers, name, wait, timeout_seconds, progress)


async def list_productions(ctx: Ctx) -> ProductionList:
    """The productions of the cluster, newest first, with their phase and progress."""
    with tool_errors():
        return await service_of(ctx).list_productions(ctx.headers)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_server(
    settings: McpSettings, transport: httpx.AsyncBaseTransport | None = None
) -> MCPServer[KubeTtsService]:
    """The kube-tts MCP server. ``transport`` replaces the network (tests use a fake router)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[KubeTtsService]) -> AsyncIterator[KubeTtsService]:
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
            yield KubeTtsService(settings, http)

    server: MCPServer[KubeTtsService] = MCPServer(
        "kube-tts",
        title="kube-tts",
        description="Text-to-speech on Kubernetes: speak, render productions, manage voices, sleep and wake models.",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        lifespan=lifespan,
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
    )
    server.tool(title="Speak text", annotations=hints())(synthesize_speech)
    server.tool(title="List models", annotations=READ_ONLY)(list_models)
    server.tool(title="List voices", annotations=READ_ONLY)(list_voices)
    server.tool(title="Create a voice from a clip", annotations=hints())(create_voice)
    server.tool(title="Transcribe audio", annotations=READ_ONLY)(transcribe_audio)
    server.tool(title="Delete a voice", annotations=hints(destructive=True, idempotent=True))(delete_voice)
    server.tool(title="GPU status", annotations=READ_ONLY)(get_gpu_status)
    server.tool(title="Put a model to sleep", annotations=hints(destructive=True, idempotent=True))(sleep_model)
    server.tool(title="Wake a model", annotations=hints(idempotent=True))(wake_model)
    server.tool(title="Start a production", annotations=hints())(start_production)
    server.tool(title="Get a production", annotations=READ_ONLY)(get_production)
    server.tool(title="List productions", annotations=READ_ONLY)(list_productions)
    server.custom_route("/healthz", methods=["GET"])(healthz)
    return server
