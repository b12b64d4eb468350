"""What the inference server checks about a speech or transcription request before any work starts
(pure; every refusal is a 4xx ``ApiError`` here, never a failure mid-stream)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from tts_crds.http_errors import ApiError
from tts_crds.speech import SpeechRequest, timestamps_problem
from tts_crds.text import speakable
from tts_crds.transcription import check_granularities, check_response_format, check_temperature

from .engines.base import Engine
from .settings import Settings


def check_speech(body: SpeechRequest, engine: Engine, settings: Settings) -> None:
    """Refuse what this engine and these limits cannot take; the reference clip is checked on decoding."""
    if body.roles is not None:
        raise ApiError(
            400,
            "roles (a script) is spoken by the router, which sends each line to its model; an inference pod "
            "speaks one voice",
            "unsupported_parameter",
            "roles",
        )
    if not speakable(body.input).strip():
        raise ApiError(400, "input is empty (or only control characters)", "invalid_value", "input")
    if len(body.input) > settings.max_input_chars:
        raise ApiError(
            400,
            f"input is {len(body.input)} characters; the limit is {settings.max_input_chars}",
            "input_too_long",
            "input",
        )
    if body.instructions:
        raise ApiError(400, f"engine {engine.name} does not take instructions", "unsupported_parameter", "instructions")
    for name in body.engine_parameters():
        if name not in engine.parameters:
            takes = ", ".join(sorted(engine.parameters)) or "none"
            raise ApiError(
                400, f"engine {engine.name} does not take {name} (it takes: {takes})", "unsupported_parameter", name
            )
    if body.ref_audio is not None and not engine.can_clone:
        raise ApiError(
            400,
            f"engine {engine.name} cannot clone voices; ref_audio is not accepted",
            "cloning_not_supported",
            "ref_audio",
        )
    if body.ref_audio is None and body.ref_text:
        raise ApiError(400, "ref_text needs ref_audio", "invalid_value", "ref_text")
    problem = timestamps_problem(body, engine.name)
    if problem:
        raise ApiError(400, problem[1], problem[0], "timestamps")
    if body.timestamps and not engine.times_words:  # an engine that times words, with a model that cannot
        raise ApiError(
            400, f"timestamps: this {engine.name} model cannot time words", "timestamps_not_supported", "timestamps"
        )


def wanted_voice(body: SpeechRequest, settings: Settings) -> str:
    """The voice asked for, with ``default`` (or none) meaning the configured default voice if there is one."""
    if body.voice in ("", "default") and settings.default_voice:
        return settings.default_voice
    return body.voice


# --- transcription (a multipart form: every value a string) -------------------------------------

#: the form fields /v1/audio/transcriptions takes besides ``file`` (OpenAI's, and the SDK's spelling
#: ``timestamp_granularities[]`` of the list)
TRANSCRIPTION_FIELDS = frozenset(
    {"model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]", "stream"}
)


@dataclass(frozen=True)
class TranscriptionForm:
    """A transcription request's fields, checked."""

    response_format: str = "json"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    granularities: frozenset[str] = frozenset()

    @property
    def words(self) -> bool:
        return "word" in self.granularities


def check_upload(upload: object, max_bytes: int) -> None:
    """``upload`` is what the form holds under ``file``: missing, a plain string, or a file with a size."""
    if upload is None:
        raise ApiError(
            400, "file is required: send the audio as the multipart/form-data field 'file'", "invalid_value", "file"
        )
    size = getattr(upload, "size", None)
    if isinstance(upload, str) or size is None:
        raise ApiError(
            400, "file must be an uploaded file (multipart/form-data), not a text field", "invalid_value", "file"
        )
    if size > max_bytes:
        raise ApiError(413, f"file is {size:,} bytes; the limit is {max_bytes:,}", "file_too_large", "file")
    if size == 0:
        raise ApiError(400, "file is empty", "invalid_file", "file")


def check_language(raw: str, languages: Collection[str]) -> str | None:
    """An ISO-639-1 code (``en``; ``en-US`` counts as ``en``) the model knows, or None to detect it."""
    code = raw.strip().lower().replace("_", "-").split("-", 1)[0]
    if not code:
        return None
    if code not in languages:
        raise ApiError(
            400,
            f"language {raw!r} is not an ISO-639-1 code this model knows (e.g. en, de, zh, ja)",
            "invalid_value",
            "language",
        )
    return code


def check_transcription(
    fields: Mapping[str, Sequence[str]], languages: Collection[str], max_prompt_chars: int
) -> TranscriptionForm:
    """Check the form's fields (``file`` aside); every refusal names its field."""
    for name in fields:
        if name not in TRANSCRIPTION_FIELDS | {"timestamp_granularities", "file"}:
            raise ApiError(400, f"unknown parameter {name!r}", "unknown_parameter", name)

    def last(name: str) -> str:
        values = fields.get(name) or [""]
        return values[-1]

    fmt = check_response_format(last("response_format"))
    if last("stream").strip().lower() in ("true", "1"):
        raise ApiError(400, "streamed transcription is not supported by this model", "unsupported_parameter", "stream")
    prompt = last("prompt")
    if len(prompt) > max_prompt_chars:
        raise ApiError(
            400, f"prompt is {len(prompt)} characters; the limit is {max_prompt_chars}", "invalid_value", "prompt"
        )
    granularities = [*fields.get("timestamp_granularities[]", ()), *fields.get("timestamp_granularities", ())]
    return TranscriptionForm(
        response_format=fmt,
        language=check_language(last("language"), languages),
        prompt=prompt.strip() or None,
        temperature=check_temperature(last("temperature")),
        granularities=check_granularities(granularities, fmt),
    )
