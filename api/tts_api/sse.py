"""Server-sent events for ``stream_format: "sse"`` (pure framing).

Events are ``data: <json>\\n\\n`` lines, as OpenAI sends them: ``speech.status`` while a request
waits (for a deployment to wake or a pod slot), then the inference pod's ``speech.audio.delta``
(base64 audio) and ``speech.audio.done``, or an ``error`` event if the request fails after the
stream began (the HTTP status is already 200 by then).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tts_crds.http_errors import error_body

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def status(state: str, elapsed: float, **extra: Any) -> bytes:
    """``{"type": "speech.status", "status": "waking" | "queued", "elapsed": 3.2, ...}``."""
    return event({"type": "speech.status", "status": state, "elapsed": round(elapsed, 2), **extra})


def audio_delta(chunk: bytes) -> bytes:
    return event({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()})


def audio_done() -> bytes:
    return event({"type": "speech.audio.done"})


def error(status_code: int, message: str, code: str) -> bytes:
    return event({"type": "error", "status": status_code, **error_body(message, code, None, status_code)})
