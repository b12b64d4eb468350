"""The speech request shape: what clients send the router and the router sends inference pods."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from . import models

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


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

    def engine_parameters(self) -> dict[str, float | int]:
        """The optional sampling parameters the request sets."""
        params = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}
        return {k: v for k, v in params.items() if v is not None}


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
    if not models.word_timestamps(engine):
        can = ", ".join(sorted(models.WORD_TIMESTAMPS))
        return (
            "timestamps_not_supported",
            f"timestamps: engine {engine} cannot time words (engines that can: {can}; see GET /v1/models)",
        )
    return None
