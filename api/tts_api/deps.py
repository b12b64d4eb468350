"""FastAPI dependencies: the router state and API-key authentication."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from tts_crds.http_errors import ApiError

from .state import RouterState


def get_state(request: Request) -> RouterState:
    state: RouterState = request.app.state.router
    return state


State = Annotated[RouterState, Depends(get_state)]


def require_key(request: Request, state: State) -> None:
    """Bearer API key (OpenAI style) unless auth is disabled explicitly."""
    if state.settings.auth_disabled:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            "missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not any(hmac.compare_digest(token.encode(), k.encode()) for k in state.keys):
        raise ApiError(401, "invalid API key", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


Authenticated = Depends(require_key)
