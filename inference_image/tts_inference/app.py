"""The inference HTTP API: ``create_app(settings)`` builds it; nothing happens at import time.
The endpoints are in ``routes`` (speech, status, health) and ``transcription``, the request checks
in ``validation``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from tts_crds.http_errors import install

from . import routes, transcription
from .host import EngineHost, Metrics
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        host = EngineHost(settings, app.state.metrics)
        host.on_fatal = getattr(app.state, "stop_server", None)
        app.state.host = host
        loader = asyncio.create_task(host.load())
        yield
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
        await host.close()

    app = FastAPI(
        title="kube-tts inference",
        version="0.1.0",
        description=(
            "One engine, one model. Speaks OpenAI's /v1/audio/speech shape, or (a whisper model) transcribes "
            "in its /v1/audio/transcriptions shape; knows nothing of Kubernetes."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    install(app)
    app.include_router(routes.router)
    app.include_router(transcription.router)
    return app
