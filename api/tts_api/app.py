"""``create_app(settings)`` builds the router; clients and caches live in the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from tts_crds.http_errors import error_body, install

from .limits import BodyLimit, BodyTooLarge, too_large
from .proxy import StreamBroken
from .relay import SpeechRelay
from .routes import captions, health, jobs, models, speech, status, transcriptions, ui, voices
from .settings import MIB, RouterSettings
from .state import router_state

log = logging.getLogger("tts_api")


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
        "Authenticate with `Authorization: Bearer <key>`; voice uploads, productions (creating and deleting "
        "jobs) and wake/sleep need an admin key.",
        lifespan=lifespan,
    )
    install(app)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return too_large(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # a bug, not a client error: say so in OpenAI's shape; the traceback goes to the log
        if not isinstance(exc, StreamBroken):  # logged already; raised only to abort the client's stream
            log.error("unhandled %s", exc.__class__.__name__, exc_info=exc)
        return JSONResponse(error_body("internal error in the router", "internal_error", None, 500), 500)

    # an audio file to transcribe may be larger than any other body (OpenAI's 25 MB), plus its form fields
    upload = {transcriptions.PATH: settings.transcription_max_bytes + MIB}
    # the speech relay innermost: inside the body limit and CORS, in front of FastAPI's routing (ADR 0053)
    app.add_middleware(SpeechRelay)
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
    for module in (health, models, speech, captions, transcriptions, voices, jobs, status):
        app.include_router(module.router)
    app.include_router(voices.listing)
    ui.install(app)  # the web UI at / (ADR 0020)
    return app
