"""The speech request shape: what clients send the router and the router sends inference pods."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import engines
from .roles import MAX_ROLES, check_role_names

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

# libsndfile's (container, subtype) for the formats soundfile encodes itself (libsndfile 1.2: MP3 with
# LAME, Opus in Ogg): the router's script encoder and the TtsJob renderer both write by this table
SOUNDFILE_FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
}

MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


class SpeechRole(BaseModel):
    """Who speaks one role of a script spoken through the speech API (ADR 0052): a TtsJob's ``Role``,
    with ``model`` (a name or an alias, as the request's own ``model``) where a TtsJob says ``deployment``."""

    model_config = ConfigDict(extra="forbid")

    voice: str = Field(
        description="A TtsVoice name or a built-in speaker of the role's model.", min_length=1, max_length=253
    )
    model: str | None = Field(
        default=None,
        description="The TtsDeployment (or alias) that speaks the role; unset: the request's model.",
        min_length=1,
        max_length=253,
    )


class SpeechRequest(BaseModel):
    """OpenAI ``POST /v1/audio/speech`` plus kube-tts extensions."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="The TtsDeployment that speaks (at the router); ignored by inference pods.",
        min_length=1,
        max_length=253,
    )
    input: str = Field(description="Text to speak.", min_length=1)
    voice: str = Field(
        default="default", description="A TtsVoice name, a built-in speaker of the model, or 'default'.", max_length=253
    )
    response_format: ResponseFormat = Field(default="mp3", description="Audio container/codec of the response.")
    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="Speaking speed, 0.25 to 4.0.")
    stream_format: Literal["audio", "sse"] = Field(
        default="audio", description="audio: raw audio bytes streamed; sse: speech.audio.delta events."
    )
    instructions: str | None = Field(
        default=None, max_length=4096, description="Style instructions, for engines that take them."
    )
    ref_audio: str | None = Field(default=None, description="Base64 reference clip for ad-hoc cloning.")
    ref_text: str | None = Field(default=None, max_length=2000, description="Transcript of ref_audio.")
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="Sampling temperature, for engines that sample (pocket-tts)."
    )
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="Nucleus sampling, for engines that take it.")
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, description="Random seed, for engines that sample (repeatable output)."
    )
    timestamps: Literal["word"] | None = Field(
        default=None,
        description="'word': the SSE stream carries speech.word events and speech.audio.done their list "
        "(needs stream_format 'sse' and an engine that times words; see GET /v1/models).",
    )

    sample_rate: int | None = Field(
        default=None,
        ge=MIN_SAMPLE_RATE,
        le=MAX_SAMPLE_RATE,
        description="kube-tts extension: the audio's sample rate in Hz, resampled by the inference pod (libsoxr); "
        "unset: the model's own (or the codec's next one up). X-Sample-Rate says the rate sent.",
    )
    roles: dict[str, SpeechRole] | None = Field(
        default=None,
        description="kube-tts extension: input is a 'Role: line' script (the TtsJob script format, "
        "docs/adr/0049-ttsjob.md) and this maps each role to its voice and, optionally, model; the router "
        "speaks the lines one after another as one stream, with the script's pauses (ADR 0052).",
        json_schema_extra={"maxProperties": MAX_ROLES},
    )

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: dict[str, SpeechRole] | None) -> dict[str, SpeechRole] | None:
        if value is not None:
            if not value:
                raise ValueError("roles is empty: name the voice of each role of the script")
            if len(value) > MAX_ROLES:
                raise ValueError(f"at most {MAX_ROLES} roles")
            check_role_names(value)
        return value

    def engine_parameters(self) -> dict[str, float | int]:
        """The optional sampling parameters the request sets."""
        params = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}
        return {k: v for k, v in params.items() if v is not None}


def sent_whole(fmt: str, stream_format: str) -> bool:
    """Whether a response of ``fmt`` waits for the whole audio, so its header states the true length.

    FLAC's STREAMINFO and WAV's RIFF and data sizes come first and cannot be rewritten once sent:
    FLAC always goes whole (no client plays it as it streams) and WAV whenever it is a download
    (raw audio); over SSE, WAV keeps streaming for live playback, with the streaming sizes (ADR 0046).
    The inference server and the router (for a script, ADR 0052) both send files by this rule.
    """
    return fmt == "flac" or (fmt == "wav" and stream_format == "audio")


def timestamps_problem(body: SpeechRequest, engine: str) -> tuple[str, str] | None:
    """Why ``body.timestamps`` cannot be served by ``engine`` (an error code and a message naming the
    field), or None. The router and the inference server both ask, so both refuse alike, before any
    model wakes (ADR 0045)."""
    if body.timestamps is None:
        return None
    if body.stream_format != "sse":
        return (
            "timestamps_need_sse",
            "timestamps: 'word' needs stream_format 'sse' (the timings arrive as speech.word events beside the audio)",
        )
    if not engines.word_timestamps(engine):
        can = ", ".join(sorted(engines.WORD_TIMESTAMPS))
        return (
            "timestamps_not_supported",
            f"timestamps: engine {engine} cannot time words (engines that can: {can}; see GET /v1/models)",
        )
    return None
