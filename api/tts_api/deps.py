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


def identify(state: RouterState, authorization: str, host: str) -> Principal | ApiError:
    """Who sends a request (its ``Authorization`` header; ``host`` is the client's address), or the 401
    it gets. Counts nothing: the speech relay (``relay.py``) and :func:`authenticate` share it."""
    if state.settings.auth_disabled:
        return Principal(f"anonymous:{host}", admin=True)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            "missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = state.keys.authenticate(token.strip())
    if found is None:
        return ApiError(401, "invalid API key", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    return found


def refuse_unknown(state: RouterState, refusal: ApiError) -> ApiError:
    """A 401 from :func:`identify`, counted."""
    state.metrics.rejected.labels("auth").inc()
    return refusal


async def authenticate(request: Request, state: State) -> Principal:
    """Bearer API key (OpenAI style) unless auth is disabled explicitly; then the per-key rate limit.

    ``async`` like every dependency here, although none awaits: FastAPI runs a plain ``def``
    dependency in its thread pool, a thread hand-off on every request's path."""
    who = identify(state, request.headers.get("authorization", ""), request.client.host if request.client else "-")
    if isinstance(who, ApiError):
        raise refuse_unknown(state, who)
    return rate_limited(state, who)


def rate_limited(state: RouterState, principal: Principal) -> Principal:
    """``principal`` if its key is within the rate limit (a token taken), else the 429."""
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
        return rate_limited(state, Principal(f"anonymous:{host}", admin=False))
    return await authenticate(request, state)


Listing = Depends(authenticate_listing)


async def require_admin(principal: User) -> Principal:
    if not principal.admin:
        raise ApiError(403, "this operation needs an admin API key", "insufficient_scope")
    return principal


Admin = Annotated[Principal, Depends(require_admin)]

# for routers whose every route needs a key
Authenticated = Depends(authenticate)
