"""FastAPI dependencies: the router state, API-key authentication with scopes, the rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from tts_crds.http_errors import ApiError

from .security import Principal
from .state import RouterState


async def get_state(request: Request) -> RouterState:
    state: RouterState = request.app.state.router
    return state


State = Annotated[RouterState, Depends(get_state)]


async def authenticate(request: Request, state: State) -> Principal:
    """Bearer API key (OpenAI style) unless auth is disabled explicitly; then the per-key rate limit.

    ``async`` like every dependency here, although none awaits: FastAPI runs a plain ``def``
    dependency in its thread pool, a thread hand-off on every request's path."""
    if state.settings.auth_disabled:
        principal = Principal(f"anonymous:{request.client.host if request.client else '-'}", admin=True)
    else:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            state.metrics.rejected.labels("auth").inc()
            raise ApiError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                "missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = state.keys.authenticate(token.strip())
        if found is None:
            state.metrics.rejected.labels("auth").inc()
            raise ApiError(401, "invalid API key", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        principal = found
    return _rate_limited(state, principal)


def _rate_limited(state: RouterState, principal: Principal) -> Principal:
    wait = state.limiter.check(principal.id)
    if wait:
        state.metrics.rejected.labels("rate_limit").inc()
        raise ApiError(
            429,
            f"rate limit of {state.settings.rate_limit_per_second:g} requests per second exceeded for this key",
            "rate_limit_exceeded",
            headers={"Retry-After": str(wait)},
        )
    return principal


User = Annotated[Principal, Depends(authenticate)]


async def authenticate_listing(request: Request, state: State) -> Principal:
    """The voice and model lists: a key as everywhere, unless ``KUBETTS_OPEN_AUDIO_LISTS`` lets a
    request without one read them (Open WebUI asks for them without its key; ADR 0042). A key
    that is sent is always checked."""
    if state.settings.open_audio_lists and not request.headers.get("authorization"):
        host = request.client.host if request.client else "-"
        return _rate_limited(state, Principal(f"anonymous:{host}", admin=False))
    return await authenticate(request, state)


Listing = Depends(authenticate_listing)


async def require_admin(principal: User) -> Principal:
    if not principal.admin:
        raise ApiError(403, "this operation needs an admin API key", "insufficient_scope")
    return principal


Admin = Annotated[Principal, Depends(require_admin)]

# for routers whose every route needs a key
Authenticated = Depends(authenticate)
