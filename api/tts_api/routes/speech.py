"""``POST /v1/audio/speech``: resolve the model to a ready pod and stream its answer back."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from tts_crds.http_errors import ApiError
from tts_crds.speech import MEDIA_TYPES, SpeechRequest

from ..deps import Authenticated, State
from ..routing import Endpoint

router = APIRouter(tags=["speech"], dependencies=[Authenticated])
log = logging.getLogger("tts_api.speech")

# headers worth passing from an inference pod to the client
_PASS_HEADERS = ("content-type", "x-sample-rate", "retry-after")


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}, "description": "The audio."}},
)
async def create_speech(body: SpeechRequest, state: State) -> Response:
    if state.deployments.objects.get(body.model) is None:
        raise ApiError(404, f"model {body.model!r} does not exist (see GET /v1/models)", "model_not_found", "model")
    if len(body.input) > state.settings.max_input_chars:
        raise ApiError(
            400,
            f"input is {len(body.input)} characters; the limit is {state.settings.max_input_chars}",
            "input_too_long",
            "input",
        )
    payload = body.model_dump(exclude_none=True)
    tried: set[str] = set()
    while True:
        endpoint = state.balancer.pick(state.endpoints(body.model), exclude=tried)
        if endpoint is None:
            if not state.endpoints(body.model):
                raise ApiError(
                    503, f"model {body.model!r} has no ready replicas", "model_not_ready", headers={"Retry-After": "5"}
                )
            if tried and all(e.pod in tried for e in state.endpoints(body.model)):
                raise ApiError(502, f"every replica of {body.model!r} refused the connection", "upstream_unavailable")
            raise ApiError(
                429,
                f"every replica of {body.model!r} is at its concurrency limit",
                "rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        try:
            upstream = await _open(state.http, endpoint, payload)
        except httpx.ConnectError as exc:
            # nothing reached the pod: safe to try another one
            state.balancer.release(endpoint)
            tried.add(endpoint.pod)
            log.warning("pod %s refused the connection (%s); trying another", endpoint.pod, exc)
            continue
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            state.balancer.release(endpoint)
            raise ApiError(
                504, f"replica {endpoint.pod} did not answer: {exc.__class__.__name__}", "upstream_timeout"
            ) from exc
        break
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASS_HEADERS}
    return StreamingResponse(
        _relay(state, endpoint, upstream),
        status_code=upstream.status_code,
        headers=headers,
        media_type=upstream.headers.get("content-type"),
    )


async def _open(http: httpx.AsyncClient, endpoint: Endpoint, payload: dict) -> httpx.Response:
    req = http.build_request("POST", f"{endpoint.url}/v1/audio/speech", json=payload)
    return await http.send(req, stream=True)


async def _relay(state: State, endpoint: Endpoint, upstream: httpx.Response) -> AsyncIterator[bytes]:
    """Pass bytes through as they arrive; closing early (client gone) closes the upstream request."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.TransportError as exc:
        log.warning("stream from %s broke: %s", endpoint.pod, exc)
    finally:
        await upstream.aclose()
        state.balancer.release(endpoint)
