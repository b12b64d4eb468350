"""The speech request shape: what clients send the router and the router sends inference pods."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
