"""One chunk's audio from the router's ``POST /v1/audio/speech``, with the retry policy of ADR 0050.

The policy is a pure function of what came back (:func:`decide`): 429, 502, 503, 504 and a
connection error are waited out inside the pod (``Retry-After`` when the router gives one, else
exponential back-off); a 4xx that waiting cannot heal is :class:`Refused` (the pod exits 2 and the Job
fails at once); anything else, or retries run out, is :class:`Transient` (exit 1: the Job's back-off
retries the index, which skips what is done)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from tts_crds.plan import PlanChunk
from tts_crds.router_client import read_error

log = logging.getLogger("tts_render.speech")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: 4xx answers that are not the caller's fault for good: a timeout, a conflict, too many requests
NOT_REFUSALS = frozenset({408, 409, 429})
MAX_ATTEMPTS = 8
BASE_DELAY_S = 1.0
MAX_DELAY_S = 30.0


class Refused(Exception):
    """The router refused the chunk for good (unknown voice, bad model): ``message`` is the router's."""

    def __init__(self, chunk_id: str, status: int, message: str) -> None:
        super().__init__(f"chunk {chunk_id}: the router refused it (HTTP {status}): {message}")
        self.status = status
        self.message = message


class Transient(Exception):
    """A failure a later try of the whole pod may not meet."""


@dataclass(frozen=True)
class Decision:
    action: str  # "retry", "refuse" or "fail"
    delay_s: float = 0.0


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the delta-seconds form; an HTTP date is not sent by the router)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


def decide(status: int | None, attempt: int, retry_after_s: float | None = None) -> Decision:
    """What to do after try ``attempt`` (from 0) ended with ``status`` (None: no answer, a connection error)."""
    if status is not None and 400 <= status < 500 and status not in NOT_REFUSALS:
        return Decision("refuse")
    if (status is None or status in RETRY_STATUSES) and attempt + 1 < MAX_ATTEMPTS:
        backoff = min(BASE_DELAY_S * 2**attempt, MAX_DELAY_S)
        return Decision("retry", min(retry_after_s, MAX_DELAY_S) if retry_after_s is not None else backoff)
    return Decision("fail")


def request_body(chunk: PlanChunk) -> dict[str, object]:
    return {
        "model": chunk.model,
        "input": chunk.text,
        "voice": chunk.voice,
        "speed": chunk.speed,
        "response_format": "wav",
    }


class Speech:
    """The router client: one session (its connection pool), the key in the Authorization header only."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        api_key: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._url = f"{url}/v1/audio/speech"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._sleep = sleep

    async def _try(self, chunk: PlanChunk) -> tuple[int | None, bytes, float | None, str]:
        try:
            async with self._session.post(self._url, json=request_body(chunk), headers=self._headers) as resp:
                body = await resp.read()
                return resp.status, body, retry_after(resp.headers.get("Retry-After")), ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, b"", None, f"{type(exc).__name__}: {exc}"

    async def speak(self, chunk: PlanChunk) -> bytes:
        """The chunk's WAV bytes; :class:`Refused` or :class:`Transient` when there are none."""
        attempt = 0
        while True:
            status, body, after, problem = await self._try(chunk)
            if status == 200:
                return body
            if status is not None:
                problem = f"HTTP {status}: {read_error(status, body)[0]}"
            decision = decide(status, attempt, after)
            if decision.action == "refuse":
                assert status is not None
                raise Refused(chunk.id, status, read_error(status, body)[0])
            if decision.action == "fail":
                raise Transient(f"chunk {chunk.id}: {problem} (after {attempt + 1} tries)")
            log.warning("chunk %s: %s; retrying in %.1f s", chunk.id, problem, decision.delay_s)
            await self._sleep(decision.delay_s)
            attempt += 1
