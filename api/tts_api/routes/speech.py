"""``POST /v1/audio/speech``: resolve the voice, hold the request until a pod of the model has a free
slot (waking the model from zero if needed), then stream the pod's answer through.

- A request takes a ticket in its deployment's hold queue (``dispatch.py``): granted at once when
  a ready pod has a free slot, else queued in arrival order — 429 with ``Retry-After`` when the
  queue is full, 504 past the deployment's ``activationTimeoutSeconds``.
- A pod that refuses the connection gives the request to another pod (nothing reached it); a pod
  that fails after bytes left it ends the client's stream with an error (the HTTP status was
  already sent), and a client that goes away closes the upstream request.
- ``stream_format: "sse"``: while waiting the client receives ``speech.status`` events, then the
  pod's events are relayed; pods that cannot send SSE yet get a plain audio request whose chunks
  the router frames as ``speech.audio.delta`` events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from tts_crds.http_errors import ApiError, error_body
from tts_crds.speech import MEDIA_TYPES, SpeechRequest

from .. import sse
from ..deps import Authenticated, State
from ..dispatch import ModelGone, QueueFull, Ticket
from ..kube import answering
from ..voices import resolve

router = APIRouter(tags=["speech"], dependencies=[Authenticated])
log = logging.getLogger("tts_api.speech")
JSON = dict[str, Any]

# headers worth passing from an inference pod to the client
_PASS_HEADERS = ("content-type", "x-sample-rate", "retry-after")
# nothing reached the pod: the request may go to another one
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# the pod closed the connection (or it failed) before answering: the request may go to another one too
_CLOSED_UNANSWERED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
# the pod's connection failed or timed out while it answered
_BROKEN = (aiohttp.ClientError, TimeoutError)
# how much of a pod's error answer the router reads
_ERROR_BODY_LIMIT = 64 * 1024
# how often a waiting plain (non-SSE) request checks that its client is still there
_DISCONNECT_POLL = 0.5


class ClientGone(Exception):
    """The client disconnected while its request waited."""


class StreamBroken(Exception):
    """The pod's stream broke after the response began; raised to abort the client's connection."""


async def _payload(state: State, body: SpeechRequest) -> JSON:
    """The request the pod receives: ``voice`` resolved, a cloned voice's clip and transcript filled in."""
    resolved = resolve(body.voice, body.model, state.voices.objects.get(body.voice), body.ref_audio is not None)
    payload = body.model_dump(exclude_none=True)
    payload["voice"] = resolved.voice
    if resolved.speed is not None and "speed" not in body.model_fields_set:
        payload["speed"] = resolved.speed
    if resolved.clip is not None:
        kind, name, key = resolved.clip
        message = f"voice {body.voice!r}: its reference clip {kind} {name!r} is missing"
        with answering(
            f"the clip of voice {body.voice!r}", {404: ApiError(400, message, "voice_unavailable", "voice")}
        ):
            clip = await state.kube.read_key(kind, name, key)
        if clip is None:
            raise ApiError(
                400, f"voice {body.voice!r}: key {key!r} is missing from {kind} {name!r}", "voice_unavailable", "voice"
            )
        payload["ref_audio"] = base64.b64encode(clip).decode()
        if resolved.ref_text:
            payload["ref_text"] = resolved.ref_text
    return payload


class Trip:
    """One speech request's way through the router: wait for a slot, open the upstream, relay, account."""

    def __init__(self, state: State, model: str, payload: JSON, ticket: Ticket, arrived: float) -> None:
        self.state = state
        self.model = model
        self.payload = payload
        self.ticket = ticket
        self.arrived = arrived
        self.deadline = arrived + state.activation_timeout(model)
        self.code = "200"
        self.first_byte = False
        self.done = False

    # --- accounting -----------------------------------------------------------------------------

    def finish(self, code: str | int | None = None) -> None:
        if self.done:
            return
        self.done = True
        if code is not None:
            self.code = str(code)
        self.state.dispatcher.finish(self.ticket)
        m = self.state.metrics
        m.requests.labels(self.model, self.code).inc()
        m.duration.labels(self.model).observe(time.monotonic() - self.arrived)

    def _first_byte(self) -> None:
        if not self.first_byte:
            self.first_byte = True
            self.state.metrics.first_byte.labels(self.model).observe(time.monotonic() - self.arrived)

    # --- waiting --------------------------------------------------------------------------------

    def _timeout_error(self) -> ApiError:
        limit = self.state.activation_timeout(self.model)
        if not self.state.endpoints(self.model):
            return ApiError(
                504,
                f"model {self.model!r} did not become ready within {limit:g} s (activationTimeoutSeconds)",
                "activation_timeout",
                "model",
            )
        return ApiError(
            504, f"no replica of {self.model!r} had a free slot within {limit:g} s", "queue_timeout", "model"
        )

    def start_wait(self) -> asyncio.Future[Any]:
        remaining = self.deadline - time.monotonic()
        return asyncio.ensure_future(self.state.dispatcher.wait(self.ticket, remaining))

    def _waited(self, task: asyncio.Future[Any]) -> None:
        """Turn the outcome of a finished wait into the endpoint being held, or the client's error."""
        try:
            task.result()
        except TimeoutError as exc:
            raise self._timeout_error() from exc
        except ModelGone as exc:
            raise ApiError(404, f"model {self.model!r} was deleted", "model_not_found", "model") from exc
        self.state.metrics.queue_wait.labels(self.model).observe(time.monotonic() - self.arrived)

    async def wait(self, request: Request) -> None:
        """Until the ticket is granted; notices a client that goes away meanwhile."""
        if self.ticket.granted:
            return
        task = self.start_wait()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_DISCONNECT_POLL)
                if done:
                    break
                if await request.is_disconnected():
                    raise ClientGone()
        finally:
            await _cancel(task)
        self._waited(task)

    # --- upstream -------------------------------------------------------------------------------

    async def open(self, request: Request | None) -> aiohttp.ClientResponse:
        """Send the request to the granted pod; if the pod never answered it, to another one."""
        upstream = self.state.upstream
        while True:
            endpoint = self.ticket.endpoint
            assert endpoint is not None
            try:
                return await upstream.post(f"{endpoint.url}/v1/audio/speech", json=self.payload)
            except _NOT_SENT as exc:
                # nothing reached the pod
                log.warning("pod %s refused the connection (%s); trying another", endpoint.pod, exc)
            except _CLOSED_UNANSWERED as exc:
                # the pod closed the connection before any answer (``post`` returns once the status
                # line and headers are in, so anything it raises came before them): a pod shutting
                # down closes its kept-alive connections, and a request can cross that close on the
                # wire. Speech has no side effects, so another pod may simply do it (each pod is
                # tried once at most)
                log.warning("pod %s closed the connection without answering (%r); trying another", endpoint.pod, exc)
            except TimeoutError as exc:
                raise ApiError(
                    504, f"replica {endpoint.pod} did not answer in time ({exc.__class__.__name__})", "upstream_timeout"
                ) from exc
            except aiohttp.ClientError as exc:
                raise ApiError(
                    502, f"replica {endpoint.pod} failed ({exc.__class__.__name__})", "upstream_unavailable"
                ) from exc
            await self._to_another_pod(request)

    async def _to_another_pod(self, request: Request | None) -> None:
        self.state.metrics.retries.labels(self.model).inc()
        self.state.dispatcher.retry_elsewhere(self.ticket)
        if request is not None:
            await self.wait(request)
        else:
            task = self.start_wait()
            try:
                await asyncio.wait({task})
            finally:
                await _cancel(task)
            self._waited(task)

    async def error_answer(self, upstream: aiohttp.ClientResponse) -> tuple[int, bytes, dict[str, str]]:
        """A pod's error, as the client gets it: its 4xx as is, its 5xx as 502/503."""
        body = b""
        try:
            async for chunk in upstream.content.iter_any():
                body += chunk
                if len(body) > _ERROR_BODY_LIMIT:
                    break
        except _BROKEN:
            pass
        finally:
            upstream.close()
        status = upstream.status
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("retry-after",)}
        if status >= 500 and status not in (503, 504):
            pod = self.ticket.endpoint.pod if self.ticket.endpoint else "?"
            message = _error_message(body) or f"status {status}"
            return 502, _json(error_body(f"replica {pod} failed: {message}", "upstream_error", None, 502)), headers
        if not _error_message(body):
            message = f"inference pod answered {status}"
            return status, _json(error_body(message, "upstream_error", None, status)), headers
        return status, body, headers

    # --- relaying -------------------------------------------------------------------------------

    async def relay(self, upstream: aiohttp.ClientResponse) -> AsyncGenerator[bytes]:
        """Bytes as they arrive. A broken upstream aborts the client's connection (no clean end)."""
        try:
            async for chunk in upstream.content.iter_any():
                self._first_byte()
                yield chunk
        except _BROKEN as exc:
            pod = self.ticket.endpoint.pod if self.ticket.endpoint else "?"
            log.warning("stream from %s broke (%s); aborting the client's response", pod, exc.__class__.__name__)
            self.code = "502"
            raise StreamBroken(f"upstream {pod} broke mid-stream") from exc
        except BaseException:
            self.code = "499"  # the client went away: closing the upstream cancels the synthesis
            raise
        finally:
            _done_with(upstream)
            self.finish()

    async def relay_sse(self, upstream: aiohttp.ClientResponse) -> AsyncGenerator[bytes]:
        """Events from a pod that speaks SSE, or audio chunks framed as events by the router."""
        framer = None
        if not upstream.headers.get("content-type", "").startswith(sse.MEDIA_TYPE):
            rate = upstream.headers.get("x-sample-rate", "")
            framer = sse.Framer(
                str(self.payload.get("input", "")),
                str(self.payload.get("response_format", "mp3")),
                int(rate) if rate.isdigit() else None,
            )
        try:
            async for chunk in upstream.content.iter_any():
                self._first_byte()
                yield framer.delta(chunk) if framer else chunk
            if framer:
                yield framer.done()
        except _BROKEN as exc:
            self.code = "502"
            yield sse.error(502, f"the inference pod's stream broke ({exc.__class__.__name__})", "upstream_unavailable")
        finally:
            _done_with(upstream)

    async def sse_now(self, upstream: aiohttp.ClientResponse) -> AsyncGenerator[bytes]:
        """The SSE answer for a request that got a slot at once."""
        try:
            async with contextlib.aclosing(self.relay_sse(upstream)) as events:
                async for chunk in events:
                    yield chunk
        except BaseException:
            self.code = "499"
            raise
        finally:
            self.finish()

    async def open_sse(self, request: Request | None) -> aiohttp.ClientResponse:
        """Ask the pod for SSE; a pod that cannot stream SSE yet gets a plain audio request instead."""
        upstream = await self.open(request)
        if upstream.status == 400:
            status, body, _headers = await self.error_answer(upstream)
            if _error_code(body) == "unsupported_stream_format":
                self.payload = {**self.payload, "stream_format": "audio"}
                return await self.open(request)
            raise ApiError(status, _error_message(body) or "bad request", _error_code(body) or "upstream_error")
        return upstream

    async def sse_waiting(self) -> AsyncGenerator[bytes]:
        """The whole SSE answer for a request that must wait: progress events, then the pod's events."""
        interval = self.state.settings.sse_status_interval
        task = self.start_wait()
        try:
            while True:
                yield sse.status(
                    "waking" if not self.state.endpoints(self.model) else "queued",
                    time.monotonic() - self.arrived,
                    model=self.model,
                    position=self.state.dispatcher.position(self.ticket),
                    ready_replicas=len(self.state.endpoints(self.model)),
                )
                done, _ = await asyncio.wait({task}, timeout=interval)
                if done:
                    break
            self._waited(task)
            yield sse.status("started", time.monotonic() - self.arrived, model=self.model)
            upstream = await self.open_sse(None)
            if upstream.status >= 400:
                status, body, _h = await self.error_answer(upstream)
                raise ApiError(status, _error_message(body) or "upstream error", _error_code(body) or "upstream_error")
            async with contextlib.aclosing(self.relay_sse(upstream)) as events:
                async for chunk in events:
                    yield chunk
        except ApiError as exc:
            self.code = str(exc.status)
            yield sse.error(exc.status, exc.message, exc.code)
        except BaseException:
            self.code = "499"
            raise
        finally:
            await _cancel(task)
            self.finish()


def _done_with(upstream: aiohttp.ClientResponse) -> None:
    """Give the pod's connection back when its answer was read to the end; otherwise close it,
    which is how the pod learns that nobody listens any more (it stops synthesising)."""
    if upstream.content.is_eof():
        upstream.release()
    else:
        upstream.close()


def _json(obj: JSON) -> bytes:
    return json.dumps(obj).encode()


def _error_field(body: bytes, field: str) -> str | None:
    try:
        value = json.loads(body).get("error", {}).get(field)
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def _error_message(body: bytes) -> str | None:
    return _error_field(body, "message")


def _error_code(body: bytes) -> str | None:
    return _error_field(body, "code")


async def _cancel(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={
        200: {
            "content": {**{m: {} for m in MEDIA_TYPES.values()}, sse.MEDIA_TYPE: {}},
            "description": "The audio, streamed as it is synthesised (or server-sent events).",
        },
        429: {"description": "The model's hold queue is full or the key's rate limit is exceeded; see Retry-After."},
        504: {"description": "The model did not wake (or free a slot) within its activationTimeoutSeconds."},
    },
)
async def create_speech(body: SpeechRequest, request: Request, state: State) -> Response:
    arrived = time.monotonic()
    model = body.model
    metrics = state.metrics
    if state.deployment(model) is None:
        metrics.requests.labels("", "404").inc()
        raise ApiError(404, f"model {model!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    try:
        if len(body.input) > state.settings.max_input_chars:
            raise ApiError(
                400,
                f"input is {len(body.input)} characters; the limit is {state.settings.max_input_chars}",
                "input_too_long",
                "input",
            )
        payload = await _payload(state, body)
        try:
            ticket = state.dispatcher.enter(model)
        except QueueFull as exc:
            metrics.rejected.labels("queue_full").inc()
            waking = not state.endpoints(model)
            raise ApiError(
                429,
                f"model {model!r} has {state.dispatcher.queued(model)} requests waiting already"
                + (" while it wakes up" if waking else ""),
                "queue_full",
                "model",
                headers={"Retry-After": "5" if waking else "1"},
            ) from exc
    except ApiError as exc:
        metrics.requests.labels(model, str(exc.status)).inc()
        raise
    if not ticket.granted:
        state.activator.kick(model)
    trip = Trip(state, model, payload, ticket, arrived)

    if body.stream_format == "sse" and not ticket.granted:
        return StreamingResponse(trip.sse_waiting(), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    try:
        await trip.wait(request)
        if body.stream_format == "sse":
            upstream = await trip.open_sse(request)
        else:
            upstream = await trip.open(request)
        if upstream.status >= 400:
            status, content, headers = await trip.error_answer(upstream)
            trip.finish(status)
            return Response(content, status, headers=headers, media_type="application/json")
    except ApiError as exc:
        trip.finish(exc.status)
        raise
    except ClientGone:
        trip.finish(499)
        return Response(status_code=499)
    except BaseException:
        trip.finish(499)
        raise
    if body.stream_format == "sse":
        return StreamingResponse(trip.sse_now(upstream), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASS_HEADERS}
    media_type = upstream.headers.get("content-type")
    return StreamingResponse(trip.relay(upstream), upstream.status, headers, media_type)
