"""Server-sent events for ``stream_format: "sse"``: the router's side of ``tts_crds.events``.

``speech.status`` while a request waits (for a deployment to wake or a pod slot), then the
inference pod's ``speech.audio.delta`` and ``speech.audio.done`` (relayed as they are), or an
``error`` event if the request fails after the stream began (the HTTP status is already 200 by
then). A pod that cannot send SSE gets a plain audio request; the router frames its chunks
(:class:`Framer`).
"""

from __future__ import annotations

from typing import Any

from tts_crds import events
from tts_crds.http_errors import error_body

MEDIA_TYPE = events.MEDIA_TYPE
HEADERS = events.HEADERS


def status(state: str, elapsed: float, **extra: Any) -> bytes:
    """``{"type": "speech.status", "status": "waking" | "queued" | "started", "elapsed": 3.2, ...}``."""
    return events.SpeechStatus(status=state, elapsed=round(elapsed, 2), **extra).frame()


def error(status_code: int, message: str, code: str) -> bytes:
    return events.ErrorEvent.of(error_body(message, code, None, status_code), status=status_code).frame()


class Framer:
    """Frames a plain audio answer as events; ``done`` carries what the pod's own event would."""

    def __init__(self, text: str, response_format: str, sample_rate: int | None) -> None:
        self.text = text
        self.format = response_format
        self.sample_rate = sample_rate
        self.bytes = 0

    def delta(self, chunk: bytes) -> bytes:
        self.bytes += len(chunk)
        return events.AudioDelta.of(chunk).frame()

    def done(self) -> bytes:
        done = events.AudioDone(usage=events.Usage.of_text(self.text))
        if self.sample_rate:
            done.sample_rate = self.sample_rate
            if self.format == "pcm":  # 16-bit mono: the length follows from the bytes
                done.audio_seconds = round(self.bytes / 2 / self.sample_rate, 3)
        return done.frame()
