"""The inference HTTP API: ``create_app(settings)`` builds it; nothing happens at import time.
A plain Starlette app (ADR 0054: FastAPI's import took half the start of a pod waking from zero).
The endpoints are in ``routes`` (speech, status, health) and ``transcription``, the request checks
in ``validation``, the OpenAPI document in ``openapi``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from tts_crds.http_errors import HANDLERS

from . import openapi, routes, transcription
from .host import EngineHost, Metrics
from .settings import Settings


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        host = EngineHost(settings, app.state.metrics)
        host.on_fatal = getattr(app.state, "stop_server", None)
        app.state.host = host
        loader = asyncio.create_task(host.load())
        yield
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
        await host.close()

    app = Starlette(
        routes=[*routes.ROUTES, *transcription.ROUTES, *openapi.ROUTES],
        exception_handlers=dict(HANDLERS),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    return app
