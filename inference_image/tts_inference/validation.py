"""What the inference server checks about a speech request before any audio starts (pure; every
refusal is a 4xx ``ApiError`` here, never a failure mid-stream)."""

from __future__ import annotations

from tts_crds.http_errors import ApiError
from tts_crds.speech import SpeechRequest

from .engines.base import Engine
from .settings import Settings
from .text import speakable


def check_speech(body: SpeechRequest, engine: Engine, settings: Settings) -> None:
    """Refuse what this engine and these limits cannot take; the reference clip is checked on decoding."""
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


def wanted_voice(body: SpeechRequest, settings: Settings) -> str:
    """The voice asked for, with ``default`` (or none) meaning the configured default voice if there is one."""
    if body.voice in ("", "default") and settings.default_voice:
        return settings.default_voice
    return body.voice
