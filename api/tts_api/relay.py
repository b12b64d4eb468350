"""The lean path of ``POST /v1/audio/speech`` (ADR 0053): plain audio requests answered in front of
FastAPI, as a bare ASGI middleware, with the route's own checks.

Every speech request crosses the router, and for a fast engine (espeak answers "Hi." in ~2 ms) the
framework's share of the router's CPU time was as large as the relay's: routing, dependency
resolution, the body read twice over (``json.loads``, then validation), and ``StreamingResponse``,
which runs each answer in an anyio task group beside a task listening for the client to leave.

Here a request that FastAPI would answer the same way is answered directly:

- the same key check (``deps.identify``) and rate limit, in FastAPI's order (a body that is not
  JSON is refused before the key is checked, a field that does not validate after it), the same
  checks and payload
  (``routes.speech``), the same hold queue, balancing and metrics (``proxy.Trip``);
- the body validated by pydantic straight from its bytes (``model_validate_json``);
- the pod's chunks handed to the server as they arrive (``send``), the last one with the end of
  the response, so a short answer leaves in one write;
- the client leaving noticed by one pending ``receive()``, which cancels the request (queued or
  streaming), as ``StreamingResponse``'s listener does, and closes the pod's connection.

Anything else goes on to FastAPI with its body: SSE and scripts (``stream_format: "sse"``,
``roles``), a body that does not validate (FastAPI words the 400, before or after the key check as
it always did) and a content type other than ``application/json``. Nothing is counted or taken
(no rate-limit token) before a request is passed on, so it is counted once, where it is answered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tts_crds.http_errors import ApiError, error_response
from tts_crds.speech import SpeechRequest

from .deps import identify, rate_limited, refuse_unknown
from .proxy import BROKEN, CLIENT_CLOSED, PASS_HEADERS, StreamBroken, Trip, code_for, done_with, log
from .routes.speech import plain_trip, speech_model
from .state import RouterState

PATH = "/v1/audio/speech"
# the pod's headers the client gets, as the ASGI server spells header names
_PASS = frozenset(name.encode() for name in PASS_HEADERS)


class SpeechRelay:
    """ASGI middleware in front of the FastAPI routes, inside the body limit and CORS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = ""
        json_body = False
        for name, value in scope["headers"]:
            if name == b"authorization" and not authorization:
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
        if not json_body:
            await self.app(scope, receive, send)
            return
        body = await _read(receive)
        if body is None:
            return  # the client left before its request arrived
        try:
            request = SpeechRequest.model_validate_json(body)
        except ValidationError:
            request = None
        if request is None or request.roles is not None or request.stream_format == "sse":
            await self.app(scope, _replay(body, receive), send)
            return
        state: RouterState = scope["app"].state.router
        client = scope.get("client")
        who = identify(state, authorization, client[0] if client else "-")
        if isinstance(who, ApiError):
            await error_response(refuse_unknown(state, who))(scope, receive, send)
            return
        try:
            rate_limited(state, who)
            arrived = time.monotonic()
            model = speech_model(state, request)
            trip = await plain_trip(state, request, model, arrived)
        except ApiError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await relay(trip, scope, receive, send)


async def _read(receive: Receive) -> bytes | None:
    """The whole request body; None if the client disconnected first."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app behind: the body read already, then the client's own messages."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


class _Watch:
    """The client, watched by one pending ``receive()``: when it disconnects, the task serving it
    is cancelled (whatever it awaits: its slot, the pod, the next chunk)."""

    def __init__(self, receive: Receive) -> None:
        self.left = False
        self._serving = asyncio.current_task()
        self._receiving: asyncio.Future[Any] = asyncio.ensure_future(receive())
        self._receiving.add_done_callback(self._heard)

    def _heard(self, receiving: asyncio.Future[Any]) -> None:
        if receiving.cancelled() or receiving.exception() is not None:
            return
        if receiving.result().get("type") == "http.disconnect" and self._serving is not None:
            self.left = True
            self._serving.cancel()

    def stop(self) -> None:
        """Before the response ends (the server answers a pending ``receive()`` then too)."""
        self._receiving.remove_done_callback(self._heard)
        self._receiving.cancel()


async def relay(trip: Trip, scope: Scope, receive: Receive, send: Send) -> None:
    """Wait for a slot, send the request to the pod and pass its answer through as it arrives:
    ``proxy.answer`` and ``Trip.relay`` for a bare ASGI ``send``."""
    watch = _Watch(receive)
    upstream: aiohttp.ClientResponse | None = None
    try:
        await trip.wait(None)
        upstream = await trip.open(None)
        if upstream.status >= 400:
            status, error, headers = await trip.error_answer(upstream)
            watch.stop()
            trip.finish(status)
            await Response(error, status, headers=headers, media_type="application/json")(scope, receive, send)
            return
        passed = [(k.lower(), v) for k, v in upstream.raw_headers if k.lower() in _PASS]
        await send({"type": "http.response.start", "status": upstream.status, "headers": passed})
        content = upstream.content
        try:
            chunk = await content.readany()
            if chunk:
                trip.note_first_byte()
            while chunk:
                end = content.at_eof()  # the pod's answer ended with this chunk: send it as the last
                if end:
                    watch.stop()
                await send({"type": "http.response.body", "body": chunk, "more_body": not end})
                if end:
                    break
                chunk = await content.readany()
            else:
                watch.stop()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BROKEN as exc:
            pod = trip.pod
            log.warning("stream from %s broke (%s); aborting the client's response", pod, exc.__class__.__name__)
            trip.finish(502)
            raise StreamBroken(f"upstream {pod} broke mid-stream") from exc
        trip.finish()
    except asyncio.CancelledError:
        if not watch.left:
            trip.finish(CLIENT_CLOSED)
            raise
        # the client left: nobody to answer (a cancelled request still ends the way a served one does)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        trip.finish(CLIENT_CLOSED)
    except ApiError as exc:
        trip.finish(exc.status)
        watch.stop()
        await error_response(exc)(scope, receive, send)
    except BaseException as exc:
        trip.finish(code_for(exc))
        raise
    finally:
        watch.stop()
        if upstream is not None:
            done_with(upstream)
