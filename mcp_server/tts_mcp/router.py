"""The router's HTTP API as a plain client: the domain logic of the MCP server, no MCP in here.

Every failure becomes a :class:`RouterError` whose message an agent can act on: the router's own
message (OpenAI-shaped ``{"error": {"message", "code", ...}}``), the status and code, and a hint
saying what to do next. Keys are sent as ``Authorization: Bearer`` and never appear in a message.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError
from tts_crds import events
from tts_crds.router_client import read_error

JSON = dict[str, Any]

# the most audio one synthesis may return (the router caps the text at a few thousand characters,
# which is minutes of audio: tens of MB as wav at most)
MAX_AUDIO_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class AuthHints:
    """How to fix a rejected key: differs between stdio (environment) and HTTP (the caller's header)."""

    invalid_key: str = "check KUBETTS_API_KEY: it must be one of the router's API keys"
    needs_admin: str = "set KUBETTS_ADMIN_API_KEY to one of the router's admin keys"


HTTP_AUTH_HINTS = AuthHints(
    invalid_key="connect with a valid router API key as 'Authorization: Bearer <key>'",
    needs_admin="connect with a router admin key ('Authorization: Bearer <admin key>')",
)

_HINTS = {
    "model_not_found": "call list_models to see the models",
    "voice_not_found": "call list_voices (with the model) to see the voices it speaks",
    "input_too_long": "split the text into shorter parts and synthesize each",
    "cloning_not_supported": (
        "this model cannot speak from a reference clip: use one of its built-in voices (list_voices), "
        "or a model whose engine clones voices (pocket-tts)"
    ),
    "voice_unavailable": "call list_voices to check the voice's state, or pick another voice",
    "voice_not_ready": (
        "the operator has not accepted the voice's clip (yet): call list_voices to see its ready state and "
        "reason, and retry once it is ready (clips are re-checked every 30 s)"
    ),
    "consent_required": "only pass consent=true when the person whose voice it is agreed to it being cloned",
    "voice_exists": "choose another name, or delete_voice the existing one first",
    "invalid_voice_name": "use lower-case letters, digits and '-', starting with a letter",
    "activation_timeout": "the model did not wake in time: call get_gpu_status (a GPU may be missing), then retry",
    "queue_timeout": "the model is busy: retry in a moment",
    "not_a_transcription_model": "pick a model whose capability is transcription (list_models), or leave model unset",
    "not_a_speech_model": "that model transcribes: pick one whose capability is speech (list_models)",
    "audio_too_short": "send a clip of at least a second or two of clear speech",
    "audio_too_long": "trim the clip to at most 30 seconds",
    "unsupported_audio_format": "send wav or flac",
    "invalid_audio": "send a wav or flac file",
    "unsupported_sample_rate": "send a clip recorded at 8-192 kHz (16-24 kHz is plenty)",
    "silent_audio": "the clip is silent: send one with clear speech",
    "job_exists": "choose another name, or call get_production for the existing one",
    "job_not_found": "call list_productions to see the productions",
    "invalid_job_name": "use lower-case letters, digits and '-', starting with a letter (or leave name unset)",
    "file_too_large": "split the text into several productions of at most 1 MiB each",
}


class RouterError(Exception):
    """A router call failed; ``str(exc)`` is the message for the agent."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def advice(status: int | None, code: str | None, hints: AuthHints, retry_after: str | None = None) -> str:
    """What an agent should do about an error (empty when nothing useful can be said)."""
    if status == 401 or code in ("invalid_api_key", "missing_api_key"):
        return hints.invalid_key
    if status == 403 or code == "insufficient_scope":
        return hints.needs_admin
    if status == 429 or code in ("rate_limit_exceeded", "queue_full"):
        return f"retry after {retry_after or 'a few'} seconds"
    if code in _HINTS:
        return _HINTS[code]
    if status is not None and status >= 500:
        return "the cluster is at fault, not the request: call get_gpu_status, or retry later"
    return ""


def error_from_response(status: int, body: bytes, hints: AuthHints, retry_after: str | None = None) -> RouterError:
    """An OpenAI-shaped error answer (or anything else a proxy may send) as a RouterError."""
    message, code = read_error(status, body)
    return _error(message, status, code, hints, retry_after)


def _error(
    message: str, status: int | None, code: str | None, hints: AuthHints, retry_after: str | None = None
) -> RouterError:
    tag = " ".join(x for x in (f"HTTP {status}" if status else "", code or "") if x)
    text = f"{message} ({tag})" if tag else message
    hint = advice(status, code, hints, retry_after)
    return RouterError(f"{text}. {hint[0].upper()}{hint[1:]}." if hint else text, status, code)


@dataclass(frozen=True)
class SpeechStatus:
    """A ``speech.status`` event: the request waits while its model wakes (or for a free slot)."""

    status: str  # waking | queued | started
    elapsed: float
    model: str
    position: int | None = None
    ready_replicas: int | None = None

    def describe(self) -> str:
        if self.status == "waking":
            where = f", position {self.position} in its queue" if self.position else ""
            return f"model {self.model!r} is waking up from zero ({self.elapsed:.1f} s{where})"
        if self.status == "queued":
            return f"waiting for a free replica of {self.model!r} ({self.elapsed:.1f} s)"
        if self.status == "started":
            return f"model {self.model!r} is speaking (waited {self.elapsed:.1f} s)"
        return f"{self.status} ({self.elapsed:.1f} s)"


StatusCallback = Callable[[SpeechStatus], Awaitable[None]]


@dataclass
class SpeechAudio:
    data: bytes
    sample_rate: int | None = None
    audio_seconds: float | None = None
    statuses: list[SpeechStatus] = field(default_factory=list)

    @property
    def woke_model(self) -> bool:
        return any(s.status == "waking" for s in self.statuses)

    @property
    def waited_seconds(self) -> float:
        return max((s.elapsed for s in self.statuses), default=0.0)


class SseParser:
    """Server-sent events, line by line: ``feed`` returns an event's JSON once its blank line arrives."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> JSON | None:
        line = line.rstrip("\r")
        if line.startswith("data:"):
            self._data.append(line[5:].lstrip(" "))
            return None
        if line or not self._data:
            return None  # comments, other fields, keep-alive blank lines
        payload, self._data = "\n".join(self._data), []
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise RouterError(f"the router sent an event that is not JSON: {payload[:100]!r}") from exc
        return event if isinstance(event, dict) else None


class SpeechCollector:
    """Turns the router's speech events into audio and status callbacks (pure, no I/O)."""

    def __init__(self, hints: AuthHints) -> None:
        self.hints = hints
        self.audio = bytearray()
        self.result = SpeechAudio(b"")
        self.done = False

    def status(self, event: events.SpeechStatus) -> SpeechStatus:
        status = SpeechStatus(
            status=event.status,
            elapsed=event.elapsed,
            model=event.model,
            position=event.position,
            ready_replicas=event.ready_replicas,
        )
        self.result.statuses.append(status)
        return status

    def add(self, data: JSON) -> SpeechStatus | None:
        """Take one event; returns a status to report, raises RouterError for an ``error`` event."""
        try:
            event = events.parse(data)
        except ValidationError as exc:
            raise RouterError(f"the router sent a malformed {data.get('type')} event") from exc
        if isinstance(event, events.SpeechStatus):
            return self.status(event)
        if isinstance(event, events.AudioDelta):
            try:
                self.audio += event.data()
            except (binascii.Error, ValueError) as exc:
                raise RouterError("the router sent audio that is not valid base64") from exc
            if len(self.audio) > MAX_AUDIO_BYTES:
                raise RouterError(f"the audio exceeds {MAX_AUDIO_BYTES} bytes; synthesize shorter text")
        elif isinstance(event, events.AudioDone):
            self.done = True
            self.result.sample_rate = event.sample_rate or None
            self.result.audio_seconds = event.audio_seconds
        elif isinstance(event, events.ErrorEvent):
            raise _error(event.error.message or "synthesis failed", event.status or None, event.error.code, self.hints)
        return None

    def finish(self) -> SpeechAudio:
        if not self.done:
            raise RouterError(
                "the router's speech stream ended before the audio was complete (a replica may have failed); retry"
            )
        self.result.data = bytes(self.audio)
        return self.result


class RouterClient:
    """One caller's view of the router: its base URL, the key to use and the admin key (if any)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        key: str,
        admin_key: str = "",
        hints: AuthHints | None = None,
    ) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self._key = key
        self._admin_key = admin_key or key
        self.hints = hints or AuthHints()

    def _headers(self, admin: bool = False) -> dict[str, str]:
        key = self._admin_key if admin else self._key
        if not key:
            raise RouterError(
                "no API key is configured for the router. "
                + (self.hints.needs_admin if admin else self.hints.invalid_key)
            )
        return {"Authorization": f"Bearer {key}"}

    def _transport_error(self, exc: httpx.TransportError) -> RouterError:
        kind = exc.__class__.__name__
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return RouterError(
                f"cannot reach the kube-tts router at {self.url} ({kind}): check that it is running and that "
                "KUBETTS_URL points at it"
            )
        if isinstance(exc, httpx.TimeoutException):
            return RouterError(f"the kube-tts router at {self.url} did not answer in time ({kind}); retry later")
        return RouterError(f"the connection to the kube-tts router at {self.url} failed ({kind}); retry")

    async def _call(self, method: str, path: str, admin: bool = False, **kwargs: Any) -> JSON:
        try:
            resp = await self.http.request(method, f"{self.url}{path}", headers=self._headers(admin), **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if resp.status_code >= 400:
            raise error_from_response(resp.status_code, resp.content, self.hints, resp.headers.get("retry-after"))
        try:
            body = resp.json()
        except ValueError as exc:
            raise RouterError(f"the router answered {method} {path} with something that is not JSON") from exc
        if not isinstance(body, dict):
            raise RouterError(f"the router answered {method} {path} with an unexpected shape")
        return body

    # --- reading ----------------------------------------------------------------------------------------

    async def list_models(self) -> list[JSON]:
        return list((await self._call("GET", "/v1/models")).get("data") or [])

    async def list_voices(self, model: str | None = None) -> list[JSON]:
        params = {"model": model} if model else None
        return list((await self._call("GET", "/v1/audio/voices", params=params)).get("data") or [])

    async def status(self) -> JSON:
        return await self._call("GET", "/v1/status")

    # --- admin ------------------------------------------------------------------------------------------

    async def scale(self, model: str, action: str) -> JSON:
        if action not in ("sleep", "wake"):
            raise ValueError(action)
        return await self._call("POST", f"/v1/models/{_segment(model, 'model')}/{action}", admin=True)

    async def create_voice(
        self,
        name: str,
        model: str,
        audio: bytes,
        filename: str,
        transcript: str = "",
        language: str = "en",
        consent: bool = False,
        description: str = "",
    ) -> JSON:
        data = {
            "name": name,
            "model": model,
            "transcript": transcript,
            "language": language,
            "consent": "true" if consent else "false",
            "description": description,
        }
        files = {"file": (filename, audio, "application/octet-stream")}
        return await self._call("POST", "/v1/audio/voices", admin=True, data=data, files=files)

    async def transcribe(self, audio: bytes, filename: str, model: str, language: str | None) -> JSON:
        """POST /v1/audio/transcriptions (json): the router holds it while the model wakes."""
        data = {"model": model, "response_format": "verbose_json"}
        if language:
            data["language"] = language
        files = {"file": (filename, audio, "application/octet-stream")}
        return await self._call("POST", "/v1/audio/transcriptions", data=data, files=files)

    async def delete_voice(self, name: str) -> JSON:
        return await self._call("DELETE", f"/v1/audio/voices/{_segment(name, 'voice')}", admin=True)

    # --- productions (TtsJobs) -----------------------------------------------------------------------

    async def create_job(self, body: JSON) -> JSON:
        """POST /v1/audio/jobs with a JSON spec (``text`` or ``script``)."""
        return await self._call("POST", "/v1/audio/jobs", admin=True, json=body)

    async def upload_job(self, text: str, fields: dict[str, str]) -> JSON:
        """POST /v1/audio/jobs as multipart: a text too long to inline, as a file, and the spec's fields."""
        files = {"file": ("text.txt", text.encode(), "text/plain; charset=utf-8")}
        return await self._call("POST", "/v1/audio/jobs", admin=True, data=fields, files=files)

    async def list_jobs(self) -> list[JSON]:
        return list((await self._call("GET", "/v1/audio/jobs")).get("data") or [])

    async def get_job(self, name: str) -> JSON:
        return await self._call("GET", f"/v1/audio/jobs/{_segment(name, 'production')}")

    # --- speech -----------------------------------------------------------------------------------------

    async def speak(self, request: JSON, on_status: StatusCallback | None = None) -> SpeechAudio:
        """``POST /v1/audio/speech`` as server-sent events: status events while the model wakes, then audio."""
        body = {**request, "stream_format": "sse"}
        collector = SpeechCollector(self.hints)
        parser = SseParser()
        try:
            async with self.http.stream(
                "POST", f"{self.url}/v1/audio/speech", headers=self._headers(), json=body
            ) as resp:
                if resp.status_code >= 400:
                    content = await resp.aread()
                    raise error_from_response(resp.status_code, content, self.hints, resp.headers.get("retry-after"))
                if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                    raise RouterError("the router did not answer with an event stream; is KUBETTS_URL the router?")
                async for line in resp.aiter_lines():
                    event = parser.feed(line)
                    if event is None:
                        continue
                    status = collector.add(event)
                    if status is not None and on_status is not None:
                        await on_status(status)
                    if collector.done:
                        break
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        return collector.finish()


def _segment(value: str, what: str) -> str:
    """A name as one URL path segment: the router's names are DNS labels, so anything else is refused here."""
    if not value or "/" in value or value in (".", "..") or len(value) > 253:
        raise RouterError(f"{what} name {value[:80]!r} is not valid: use the name list_models/list_voices shows")
    return value
