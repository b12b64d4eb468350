"""The bridge's calls to the server: what it sends for each API, and the server's failures as clean errors."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from tts_crds.http_errors import ApiError
from tts_crds.models import ServerSpec, TtsApiRequest
from tts_crds.speech import SpeechRequest

from . import convert

log = logging.getLogger("tts_inference.bridge")
_ERROR_LIMIT = 16 * 1024
# keys under which tts-api servers put base64 audio when they answer JSON
_B64_KEYS = ("audio", "audio_base64", "wav", "data")


@dataclass
class Outgoing:
    """One request to the server: a JSON body, or form fields with an optional reference clip."""

    json: dict[str, object] | None = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None


def request_body(
    server: ServerSpec, body: SpeechRequest, voice: str, source: str, clip: bytes | None = None
) -> Outgoing:
    """What the server is sent: OpenAI's speech request, or its own (``api: tts-api``, ``ttsApi``)."""
    if server.api == "tts-api":
        return _tts_api(server.tts_api or TtsApiRequest(), body, voice, clip)
    out: dict[str, object] = {
        "model": server.model,  # the server's own name for its model, not the TtsDeployment's
        "input": body.input,
        "voice": voice,
        "response_format": source,
        "speed": body.speed,
    }
    if body.instructions:
        out["instructions"] = body.instructions
    if server.streams:
        out["stream"] = True  # Kokoro-FastAPI and fastkokoro stream only when asked
    return Outgoing(json=out)


def _tts_api(req: TtsApiRequest, body: SpeechRequest, voice: str, clip: bytes | None) -> Outgoing:
    fields: dict[str, object] = {**req.extra, req.text_field: body.input}
    if req.voice_field and clip is None:
        fields[req.voice_field] = voice
    if req.speed_field:
        fields[req.speed_field] = body.speed
    if clip is not None and req.reference_text_field and body.ref_text:
        fields[req.reference_text_field] = body.ref_text
    if req.encoding == "json":
        return Outgoing(json=fields)
    files = {req.reference_audio_field: ("reference.wav", clip, "application/octet-stream")} if clip else None
    return Outgoing(data={k: str(v) for k, v in fields.items()}, files=files)


@dataclass
class Failures:
    """What went wrong last with the server, for ``/v1/status``, and a breaker: after ``trip_after``
    failed answers in a row the bridge reports itself unready for ``cool_off`` seconds (the pod leaves
    the router's endpoints and the operator sets the ServerFailing condition), then tries again."""

    trip_after: int = 3
    cool_off: float = 20.0
    clock: Callable[[], float] = time.monotonic
    last_error: str | None = None
    errors: int = 0
    answered: int = 0
    in_a_row: int = 0
    tripped_at: float | None = None

    def failed(self, message: str) -> None:
        self.errors += 1
        self.in_a_row += 1
        self.last_error = message
        if self.in_a_row >= self.trip_after:
            self.tripped_at = self.clock()
        log.warning("server failed (%d in a row): %s", self.in_a_row, message)

    def ok(self) -> None:
        self.answered += 1
        self.in_a_row = 0
        self.last_error = None
        self.tripped_at = None

    def tripped(self) -> str | None:
        """Why the bridge is unready now, or None."""
        if self.tripped_at is None or self.clock() - self.tripped_at > self.cool_off:
            return None
        return f"the server failed {self.in_a_row} requests in a row; last: {self.last_error}"


def _message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:200].decode(errors="replace").strip()
    if isinstance(body, dict):
        err = body.get("error") or body.get("detail") or body.get("message")
        if isinstance(err, dict):
            err = err.get("message")
        if err:
            return str(err)[:500]
    return raw[:200].decode(errors="replace")


async def error_of(resp: httpx.Response) -> ApiError:
    """The server's error answer as the client's: a 400/422 as a 400 with its message, the rest as 502."""
    raw = b""
    async for chunk in resp.aiter_bytes():
        raw += chunk
        if len(raw) > _ERROR_LIMIT:
            break
    message = _message(raw) or f"status {resp.status_code}"
    if resp.status_code in (400, 422):
        return ApiError(400, f"the speech server refused the request: {message}", "invalid_request")
    if resp.status_code in (429, 503):
        return ApiError(503, f"the speech server is busy: {message}", "server_busy", headers={"Retry-After": "2"})
    return ApiError(502, f"the speech server answered {resp.status_code}: {message}", "server_error")


async def open_speech(client: httpx.AsyncClient, server: ServerSpec, out: Outgoing) -> httpx.Response:
    """POST the speech request; the open response (a 2xx), or the ApiError the client gets."""
    try:
        req = client.build_request("POST", server.paths.speech, json=out.json, data=out.data, files=out.files)
        resp = await client.send(req, stream=True)
    except httpx.TimeoutException as exc:
        why = f"the speech server did not answer in time ({exc.__class__.__name__})"
        raise ApiError(504, why, "server_timeout") from exc
    except httpx.HTTPError as exc:
        raise ApiError(
            503,
            f"the speech server is not reachable ({exc.__class__.__name__})",
            "server_unavailable",
            headers={"Retry-After": "2"},
        ) from exc
    if resp.status_code >= 300:
        err = await error_of(resp)
        await resp.aclose()
        raise err
    return resp


async def audio_bytes(resp: httpx.Response, server: ServerSpec) -> AsyncIterator[bytes]:
    """The answer's audio: its body, or (tts-api servers answering JSON) the base64 audio in it."""
    if server.api == "tts-api" and resp.headers.get("content-type", "").startswith("application/json"):
        body = json.loads(await resp.aread())
        found = next((body[k] for k in _B64_KEYS if isinstance(body, dict) and isinstance(body.get(k), str)), None)
        if found is None:
            raise convert.NotAudio("the server answered JSON without base64 audio in it")
        yield base64.b64decode(found)
        return
    async for chunk in resp.aiter_bytes():
        if chunk:
            yield chunk
