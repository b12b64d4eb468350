"""The speech proxy engine: one request's way through the router once it holds a ticket in its
deployment's hold queue (``dispatch.py``): wait for a slot, open the upstream on the granted pod,
relay its answer (bytes or SSE events), and account for it.

- A pod that refuses the connection, or closes it before answering, gives the request to another
  pod (nothing reached it); a pod that fails after bytes left it ends the client's stream with an
  error (the HTTP status was already sent).
- A client that goes away closes the upstream request, which is how the pod learns to stop.
- :func:`count_request` is the one place that counts a request, and :func:`code_for` the one place
  that maps what ended it to a status: an ``ApiError``'s own, else the client went away (499,
  nginx's "client closed request").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from tts_crds.http_errors import ApiError, error_body

from . import sse
from .dispatch import ModelGone, QueueFull, Ticket
from .state import RouterState

log = logging.getLogger("tts_api.speech")
JSON = dict[str, Any]

CLIENT_CLOSED = "499"
# headers worth passing from an inference pod to the client
PASS_HEADERS = ("content-type", "x-sample-rate", "retry-after")
# nothing reached the pod: the request may go to another one
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# the pod closed the connection (or it failed) before answering: the request may go to another one too
_CLOSED_UNANSWERED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
# the pod's connection failed or timed out while it answered
BROKEN = (aiohttp.ClientError, TimeoutError)
# how much of a pod's error answer the router reads
_ERROR_BODY_LIMIT = 64 * 1024
# how often a waiting plain (non-SSE) request checks that its client is still there
_DISCONNECT_POLL = 0.5


class ClientGone(Exception):
    """The client disconnected while its request waited."""


class StreamBroken(Exception):
    """The pod's stream broke after the response began; raised to abort the client's connection."""


def code_for(exc: BaseException) -> str:
    """The status a request ended by ``exc`` counts as: an ApiError's own; anything else that ends it
    unhandled (the client disconnected, the response was cancelled) is the client leaving."""
    if isinstance(exc, ApiError):
        return str(exc.status)
    return CLIENT_CLOSED


def count_request(state: RouterState, model: str, code: str | int) -> None:
    """Count one answered speech request; every path ends here (``Trip.finish`` or an early refusal)."""
    state.metrics.requests.labels(model, str(code)).inc()


class Trip:
    """One speech request's way through the router: wait for a slot, open the upstream, relay, account."""

    def __init__(
        self,
        state: RouterState,
        model: str,
        payload: JSON,
        ticket: Ticket,
        arrived: float,
        path: str = "/v1/audio/speech",
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> None:
        self.state = state
        self.model = model
        self.payload = payload
        self.path = path
        # a multipart request (a transcription) is built anew for each pod it is sent to: aiohttp
        # consumes a FormData once
        self.form = form
        self.ticket = ticket
        self.arrived = arrived
        self.deadline = arrived + state.activation_timeout(model)
        self.code: str | None = None  # set by whatever decided the answer; unset at the end means 200
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
        count_request(self.state, self.model, self.code or "200")
        self.state.metrics.duration.labels(self.model).observe(time.monotonic() - self.arrived)

    @contextlib.asynccontextmanager
    async def accounted(self) -> AsyncIterator[None]:
        """Around a response body: the trip ends with it, as the client left it if nothing else decided."""
        try:
            yield
        except BaseException as exc:
            if self.code is None:
                self.code = code_for(exc)
            raise
        finally:
            self.finish()

    def note_first_byte(self) -> None:
        if not self.first_byte:
            self.first_byte = True
            self.state.metrics.first_byte.labels(self.model).observe(time.monotonic() - self.arrived)

    @property
    def pod(self) -> str:
        """The pod the trip holds a slot on ("?" when none)."""
        return self.ticket.endpoint.pod if self.ticket.endpoint else "?"

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

    @contextlib.contextmanager
    def _outcome(self) -> Iterator[None]:
        """Around what ends a wait: the endpoint held (the wait measured), or the client's error."""
        try:
            yield
        except TimeoutError as exc:
            raise self._timeout_error() from exc
        except ModelGone as exc:
            raise ApiError(404, f"model {self.model!r} was deleted", "model_not_found", "model") from exc
        self.state.metrics.queue_wait.labels(self.model).observe(time.monotonic() - self.arrived)

    def _waited(self, task: asyncio.Future[Any]) -> None:
        """Turn the outcome of a finished wait into the endpoint being held, or the client's error."""
        with self._outcome():
            task.result()

    async def wait(self, request: Request | None) -> None:
        """Until the ticket is granted. ``request``: a client that goes away meanwhile is noticed by
        asking it every half second; without one, whoever runs the trip watches the client (and
        cancels the wait when it leaves)."""
        if self.ticket.granted:
            return
        if request is None:
            with self._outcome():
                await self.state.dispatcher.wait(self.ticket, self.deadline - time.monotonic())
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
                if self.form is not None:
                    return await upstream.post(f"{endpoint.url}{self.path}", data=self.form())
                return await upstream.post(f"{endpoint.url}{self.path}", json=self.payload)
            except _NOT_SENT as exc:
                # nothing reached the pod
                log.warning("pod %s refused the connection (%s); trying another", endpoint.pod, exc)
            except _CLOSED_UNANSWERED as exc:
                # the pod closed the connection before any answer (``post`` returns once the status
                # line and headers are in, so anything it raises came before them): a pod shutting
                # down closes its kept-alive connections, and a request can cross that close on the
                # wire. Speech and transcription have no side effects, so another pod may simply do
                # it (each pod is tried once at most)
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
        await self.wait(request)

    async def error_answer(self, upstream: aiohttp.ClientResponse) -> tuple[int, bytes, dict[str, str]]:
        """A pod's error, as the client gets it: its 4xx as is, its 5xx as 502/503."""
        body = b""
        try:
            async for chunk in upstream.content.iter_any():
                body += chunk
                if len(body) > _ERROR_BODY_LIMIT:
                    break
        except BROKEN:
            pass
        finally:
            upstream.close()
        status = upstream.status
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("retry-after",)}
        if status >= 500 and status not in (503, 504):
            pod = self.pod
            message = _error_message(body) or f"status {status}"
            return 502, _json(error_body(f"replica {pod} failed: {message}", "upstream_error", None, 502)), headers
        if not _error_message(body):
            message = f"inference pod answered {status}"
            return status, _json(error_body(message, "upstream_error", None, status)), headers
        return status, body, headers

    async def error_response(self, upstream: aiohttp.ClientResponse) -> Response:
        """The pod's error answer as the client's response; the trip ends with it."""
        status, content, headers = await self.error_answer(upstream)
        self.finish(status)
        return Response(content, status, headers=headers, media_type="application/json")

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

    # --- relaying -------------------------------------------------------------------------------

    async def relay(self, upstream: aiohttp.ClientResponse) -> AsyncGenerator[bytes]:
        """Bytes as they arrive. A broken upstream aborts the client's connection (no clean end)."""
        async with self.accounted():
            try:
                async for chunk in upstream.content.iter_any():
                    self.note_first_byte()
                    yield chunk
            except BROKEN as exc:
                pod = self.pod
                log.warning("stream from %s broke (%s); aborting the client's response", pod, exc.__class__.__name__)
                self.code = "502"
                raise StreamBroken(f"upstream {pod} broke mid-stream") from exc
            finally:
                done_with(upstream)

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
                self.note_first_byte()
                yield framer.delta(chunk) if framer else chunk
            if framer:
                yield framer.done()
        except BROKEN as exc:
            self.code = "502"
            yield sse.error(502, f"the inference pod's stream broke ({exc.__class__.__name__})", "upstream_unavailable")
        finally:
            done_with(upstream)

    async def sse_now(self, upstream: aiohttp.ClientResponse) -> AsyncGenerator[bytes]:
        """The SSE answer for a request that got a slot at once."""
        async with self.accounted(), contextlib.aclosing(self.relay_sse(upstream)) as events:
            async for chunk in events:
                yield chunk

    async def sse_waiting(self) -> AsyncGenerator[bytes]:
        """The whole SSE answer for a request that must wait: progress events, then the pod's events."""
        interval = self.state.settings.sse_status_interval
        task = self.start_wait()
        async with self.accounted():
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
                    raise ApiError(
                        status, _error_message(body) or "upstream error", _error_code(body) or "upstream_error"
                    )
                async with contextlib.aclosing(self.relay_sse(upstream)) as events:
                    async for chunk in events:
                        yield chunk
            except ApiError as exc:
                self.code = code_for(exc)
                yield sse.error(exc.status, exc.message, exc.code)
            finally:
                await _cancel(task)


def enter(state: RouterState, model: str) -> Ticket:
    """A ticket in the model's hold queue (granted at once when a pod has a free slot); waking the
    model when it must wait. A full queue is a 429 with ``Retry-After``."""
    try:
        ticket = state.dispatcher.enter(model)
    except QueueFull as exc:
        state.metrics.rejected.labels("queue_full").inc()
        waking = not state.endpoints(model)
        raise ApiError(
            429,
            f"model {model!r} has {state.dispatcher.queued(model)} requests waiting already"
            + (" while it wakes up" if waking else ""),
            "queue_full",
            "model",
            headers={"Retry-After": "5" if waking else "1"},
        ) from exc
    if not ticket.granted:
        state.activator.kick(model)
    return ticket


async def answer(trip: Trip, request: Request, events: bool = False) -> Response:
    """Wait for a slot, send, and stream the pod's answer through: its bytes, or (``events``) SSE
    for a request that got its slot without waiting (one that waits gets ``Trip.sse_waiting``)."""
    try:
        await trip.wait(request)
        upstream = await (trip.open_sse(request) if events else trip.open(request))
        if upstream.status >= 400:
            return await trip.error_response(upstream)
    except ClientGone:
        trip.finish(CLIENT_CLOSED)
        return Response(status_code=int(CLIENT_CLOSED))
    except BaseException as exc:
        trip.finish(code_for(exc))
        raise
    if events:
        return StreamingResponse(trip.sse_now(upstream), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in PASS_HEADERS}
    media_type = upstream.headers.get("content-type")
    return StreamingResponse(trip.relay(upstream), upstream.status, headers, media_type)


def done_with(upstream: aiohttp.ClientResponse) -> None:
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
