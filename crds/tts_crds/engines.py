"""The engines kube-tts knows and what each can do: light (no CRD models), so the inference server and
the speech request shape read the same table as the operator and the router without importing
:mod:`tts_crds.models` (issue 18, scale from zero). ``tts_crds.models`` re-exports every name."""

from __future__ import annotations

from enum import StrEnum


class Engine(StrEnum):
    """Engines the inference image knows (one module each in tts_inference.engines)."""

    PIPER = "piper"
    ESPEAK = "espeak"
    KOKORO = "kokoro"
    POCKET_TTS = "pocket-tts"
    WHISPER = "whisper"
    # a user's own speech server image, fronted by the bridge sidecar (ADR 0047)
    OPENAI_COMPATIBLE = "openai-compatible"


class Capability(StrEnum):
    """What a model serves: speech (``/v1/audio/speech``) or transcription (``/v1/audio/transcriptions``)."""

    SPEECH = "speech"
    TRANSCRIPTION = "transcription"


# What each engine serves (ADR 0041): an engine implies its capability, so a TtsDeployment needs no
# extra field and the router, the operator and the UI all read the same table.
ENGINE_CAPABILITY: dict[Engine, Capability] = {
    Engine.PIPER: Capability.SPEECH,
    Engine.ESPEAK: Capability.SPEECH,
    Engine.KOKORO: Capability.SPEECH,
    Engine.POCKET_TTS: Capability.SPEECH,
    Engine.WHISPER: Capability.TRANSCRIPTION,
    Engine.OPENAI_COMPATIBLE: Capability.SPEECH,
}
# Cloning engines that cannot use a reference clip without its transcript (F5-TTS-like engines).
# None of the engines shipped today needs one; a voice for such an engine without a transcript and
# without a transcription model in its namespace is not Ready (TranscriptNeeded).
NEEDS_REFERENCE_TEXT: frozenset[Engine] = frozenset()
# Engines that time each word of what they say (``"timestamps": "word"``, ADR 0045): espeak-ng from
# its word events, piper and kokoro (its ONNX layout) from their models' phoneme durations.
WORD_TIMESTAMPS: frozenset[Engine] = frozenset({Engine.PIPER, Engine.ESPEAK, Engine.KOKORO})


def word_timestamps(engine: str) -> bool:
    """Whether ``engine`` can time words (an unknown engine cannot)."""
    return engine in {e.value for e in WORD_TIMESTAMPS}


def capability_of(engine: str | Engine) -> Capability:
    """The capability of an engine by name; unknown names (a newer CRD) count as speech."""
    try:
        return ENGINE_CAPABILITY[Engine(engine)]
    except ValueError:
        return Capability.SPEECH
