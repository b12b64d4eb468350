"""Server-sent events of ``stream_format: "sse"``: one model per event type, shared by the router (which
frames and relays them), the inference server (which sends them) and the MCP server (which reads them).

Events are ``data: <json>\\n\\n`` lines, as OpenAI sends them:

- ``speech.status`` (router only) while a request waits for its model to wake or for a free slot;
- ``speech.audio.delta``: a piece of the audio, base64;
- ``speech.word`` (with ``"timestamps": "word"``): a word of the input and when it is spoken, in
  seconds of the returned audio, sent once the audio holding it has been sent;
- ``speech.audio.done``: the end, with usage (input characters), audio length and sample rate (and
  with timestamps, every word as ``words``);
- ``error``: the request failed after the stream began (the HTTP status was 200 by then).

Pure pydantic: no web framework here.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

STATUS: Literal["speech.status"] = "speech.status"
AUDIO_DELTA: Literal["speech.audio.delta"] = "speech.audio.delta"
AUDIO_DONE: Literal["speech.audio.done"] = "speech.audio.done"
WORD: Literal["speech.word"] = "speech.word"
ERROR: Literal["error"] = "error"


class _Event(BaseModel):
    type: str

    def frame(self) -> bytes:
        """The event on the wire: the fields given when it was made (``type`` always), compact JSON."""
        data = {"type": self.type, **self.model_dump(mode="json", exclude_unset=True, exclude={"type"})}
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class SpeechStatus(_Event):
    """The request waits: ``waking`` (the model is at zero), ``queued`` (no free slot), then ``started``."""

    type: Literal["speech.status"] = STATUS
    status: str = ""
    elapsed: float = 0.0
    model: str = ""
    position: int | None = None
    ready_replicas: int | None = None


class AudioDelta(_Event):
    type: Literal["speech.audio.delta"] = AUDIO_DELTA
    audio: str = Field(default="", description="A piece of the audio in the response format, base64.")

    @classmethod
    def of(cls, chunk: bytes) -> AudioDelta:
        return cls(audio=base64.b64encode(chunk).decode())

    def data(self) -> bytes:
        return base64.b64decode(self.audio, validate=True)


class Usage(BaseModel):
    """Engines do not count tokens: usage counts input characters."""

    input_tokens: int
    output_tokens: int = 0
    total_tokens: int

    @classmethod
    def of_text(cls, text: str) -> Usage:
        return cls(input_tokens=len(text), output_tokens=0, total_tokens=len(text))


class WordTiming(BaseModel):
    """A word of the input (a whitespace-separated token as written, punctuation included) and when
    it is spoken: seconds from the start of the returned audio."""

    word: str
    start: float = Field(ge=0.0)
    end: float = Field(ge=0.0)


class SpeechWord(_Event, WordTiming):
    type: Literal["speech.word"] = WORD

    @classmethod
    def of(cls, timing: WordTiming) -> SpeechWord:
        return cls(word=timing.word, start=timing.start, end=timing.end)


class AudioDone(_Event):
    type: Literal["speech.audio.done"] = AUDIO_DONE
    usage: Usage | None = None
    audio_seconds: float | None = None
    sample_rate: int | None = None
    words: list[WordTiming] | None = Field(default=None, description='Every word, with "timestamps": "word".')


class ErrorDetail(BaseModel):
    message: str = ""
    type: str = "server_error"
    code: str | None = None
    param: str | None = None


class ErrorEvent(_Event):
    type: Literal["error"] = ERROR
    status: int | None = Field(default=None, description="The HTTP status the error would have had (router).")
    error: ErrorDetail = Field(default_factory=ErrorDetail)

    @classmethod
    def of(cls, body: dict[str, Any], status: int | None = None) -> ErrorEvent:
        """From an OpenAI-shaped error body ``{"error": {...}}``."""
        detail = ErrorDetail.model_validate(body["error"])
        return cls(error=detail) if status is None else cls(status=status, error=detail)


SpeechEvent = Annotated[SpeechStatus | AudioDelta | SpeechWord | AudioDone | ErrorEvent, Field(discriminator="type")]
_EVENT = TypeAdapter(SpeechEvent)


def parse(data: dict[str, Any]) -> SpeechStatus | AudioDelta | SpeechWord | AudioDone | ErrorEvent | None:
    """A received event as its model; None for a type this contract does not know (skip it).

    Raises ``pydantic.ValidationError`` for a known type with fields of the wrong shape."""
    if data.get("type") not in (STATUS, AUDIO_DELTA, WORD, AUDIO_DONE, ERROR):
        return None
    return _EVENT.validate_python(data)
