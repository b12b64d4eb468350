"""The web UI: static files packaged in ``tts_api/ui`` — ``index.html`` at ``/``, the rest under ``/ui/`` —
served with a strict Content-Security-Policy (ADR 0020). No key is needed to load the page; every
API call it makes carries the key the user enters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ..deps import State

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

# Only the router's own origin: no inline script or style, no third party; audio plays from blob: URLs.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
UI_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    # revalidate every time (ETag): a new router version's UI is picked up at once
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


class UiFiles(StaticFiles):
    """Static files with the UI's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(UI_HEADERS)
        return response


@router.api_route("/", methods=["GET", "HEAD"])
async def index() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers=UI_HEADERS)


@router.get("/ui/config.json")
async def ui_config(state: State) -> dict[str, Any]:
    """The limits the UI shows before a request is sent (none of them is a secret)."""
    s = state.settings
    return {
        "max_input_chars": s.max_input_chars,
        "voice_max_bytes": s.voice_max_bytes,
        "voice_min_seconds": s.voice_min_seconds,
        "voice_max_seconds": s.voice_max_seconds,
    }


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui", UiFiles(directory=UI_DIR), name="ui")
