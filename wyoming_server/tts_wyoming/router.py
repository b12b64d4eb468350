"""The router's HTTP API as this server needs it: list models and voices, stream speech as PCM.

Every failure becomes a :class:`SpeechFailure` with a message for the person reading Home
Assistant's log and a code: the router's own (``voice_not_found``, ``activation_timeout``, ...)
where it gave one, else ``router_unreachable``, ``router_timeout`` or ``stream_broken``. The key is
sent as ``Authorization: Bearer`` and never appears in a message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from tts_crds.router_client import read_error

JSON = dict[str, Any]


class SpeechFailure(Exception):
    """What went wrong, as a Wyoming ``error`` event carries it."""

    def __init__(self, text: str, code: str) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


def failure_from_response(status: int, body: bytes) -> SpeechFailure:
    """An OpenAI-shaped error answer (or whatever a proxy sent) as a SpeechFailure."""
    message, code = read_error(status, body)
    return SpeechFailure(f"{message} (HTTP {status})", str(code or f"http_{status}"))


@dataclass(frozen=True)
class Speech:
    """An answer under way: its sample rate and the PCM as it arrives."""

    rate: int
    pcm: AsyncIterator[bytes]


class Router:
    def __init__(self, http: httpx.AsyncClient, url: str, key: str) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"}

    def _transport(self, exc: httpx.TransportError, what: str) -> SpeechFailure:
        kind = exc.__class__.__name__
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return SpeechFailure(f"cannot reach the kube-tts router at {self.url} ({kind})", "router_unreachable")
        if isinstance(exc, httpx.TimeoutException):
            return SpeechFailure(f"the kube-tts router did not answer {what} in time ({kind})", "router_timeout")
        return SpeechFailure(f"the connection to the kube-tts router broke during {what} ({kind})", "stream_broken")

    async def _get(self, path: str) -> list[JSON]:
        try:
            resp = await self.http.get(f"{self.url}{path}", headers=self.headers)
        except httpx.TransportError as exc:
            raise self._transport(exc, f"GET {path}") from exc
        if resp.status_code >= 400:
            raise failure_from_response(resp.status_code, resp.content)
        try:
            data = resp.json().get("data")
        except (ValueError, AttributeError) as exc:
            raise SpeechFailure(
                f"the router answered GET {path} with something unexpected", "bad_router_answer"
            ) from exc
        return [d for d in data or [] if isinstance(d, dict)]

    async def models(self) -> list[JSON]:
        return await self._get("/v1/models")

    async def voices(self) -> list[JSON]:
        return await self._get("/v1/audio/voices")

    @asynccontextmanager
    async def speak(self, model: str, voice: str, text: str) -> AsyncIterator[Speech]:
        """``POST /v1/audio/speech`` as raw PCM: the router holds it while the model wakes from zero."""
        body = {"model": model, "voice": voice, "input": text, "response_format": "pcm"}
        request = self.http.build_request("POST", f"{self.url}/v1/audio/speech", headers=self.headers, json=body)
        try:
            resp = await self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._transport(exc, "a speech request") from exc
        try:
            if resp.status_code >= 400:
                raise failure_from_response(resp.status_code, await resp.aread())
            rate = resp.headers.get("x-sample-rate", "")
            if not rate.isdigit() or int(rate) <= 0:
                raise SpeechFailure("the router's speech answer has no X-Sample-Rate header", "bad_router_answer")
            yield Speech(int(rate), self._pcm(resp))
        finally:
            await resp.aclose()

    async def _pcm(self, resp: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for piece in resp.aiter_raw():
                yield piece
        except httpx.TransportError as exc:
            raise self._transport(exc, "the speech stream") from exc
