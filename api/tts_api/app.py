"""``create_app(settings)`` builds the router; clients and caches live in the lifespan."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tts_crds.http_errors import error_body, install

from .proxy import StreamBroken
from .routes import captions, health, models, speech, status, transcriptions, ui, voices
from .settings import MIB, RouterSettings
from .state import router_state

log = logging.getLogger("tts_api")


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes: at once by Content-Length, else while reading."""

    def __init__(self, app: ASGIApp, limit: int, paths: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.paths = paths or {}  # a larger (or smaller) limit for some paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.default)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            body = json.dumps(error_body(BodyTooLarge(limit).detail, "request_too_large", None, 413)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with router_state(settings) as state:
            app.state.router = state
            yield

    app = FastAPI(
        title="kube-tts",
        version="0.1.0",
        description="OpenAI-compatible text-to-speech in front of every TtsDeployment of the cluster. "
        "Authenticate with `Authorization: Bearer <key>`; voice uploads and wake/sleep need an admin key.",
        lifespan=lifespan,
    )
    install(app)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error_body(exc.detail, "request_too_large", None, 413), 413)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # a bug, not a client error: say so in OpenAI's shape; the traceback goes to the log
        if not isinstance(exc, StreamBroken):  # logged already; raised only to abort the client's stream
            log.error("unhandled %s", exc.__class__.__name__, exc_info=exc)
        return JSONResponse(error_body("internal error in the router", "internal_error", None, 500), 500)

    # an audio file to transcribe may be larger than any other body (OpenAI's 25 MB), plus its form fields
    upload = {transcriptions.PATH: settings.transcription_max_bytes + MIB}
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes, paths=upload)
    origins = settings.cors_origin_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "X-Sample-Rate"],
            max_age=600,
        )
    for module in (health, models, speech, captions, transcriptions, voices, status):
        app.include_router(module.router)
    app.include_router(voices.listing)
    ui.install(app)  # the web UI at / (ADR 0020)
    return app
