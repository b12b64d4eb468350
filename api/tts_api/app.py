"""``create_app(settings)`` builds the router; clients and caches live in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from tts_crds.http_errors import install

from .routes import health, models, speech
from .settings import RouterSettings
from .state import router_state


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
        "Authenticate with `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    install(app)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(speech.router)
    return app
