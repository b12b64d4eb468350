"""A script's way through the router (ADR 0052): each segment (``scripts.Segment``) is one ordinary
speech request through the proxy (``proxy.Trip``: its model's hold queue, a wake from zero, a slot on
a pod, the metrics), sent when the one before has been relayed, as pcm at the script's rate; the
router encodes the segments and the pauses between them into one response as they arrive.

- The first segment is opened before the response starts, so a refusal of it (a voice the pod does
  not know, a model that does not wake) is the client's HTTP error, as for a plain request.
- A later segment that fails cuts the stream (its status has gone): the connection is aborted
  (``StreamBroken``), or over SSE an ``error`` event ends it.
- Each segment counts as one request of its model. The models of later roles that are at zero are
  woken when the script starts (``Activator.prewake``), so their load overlaps the lines before
  theirs instead of stalling the stream at their first line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from tts_crds.http_errors import ApiError
from tts_crds.speech import MEDIA_TYPES, SpeechRequest, sent_whole

from . import sse
from .proxy import CLIENT_CLOSED, ClientGone, StreamBroken, Trip, code_for, enter
from .script_audio import Resampler, ScriptEncoder
from .scripts import Segment, codec_rate, pause_bytes, preset_rate
from .state import RouterState

log = logging.getLogger("tts_api.speech")
JSON = dict[str, Any]


class LineFailed(Exception):
    """A segment after the first could not be spoken; the response had begun."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def segment_request(body: SpeechRequest, segment: Segment) -> SpeechRequest:
    """The plain speech request of one segment: the script's options, the segment's model, voice and text, as pcm."""
    return body.model_copy(
        update={
            "model": segment.model,
            "voice": segment.voice,
            "input": segment.text,
            "response_format": "pcm",
            "stream_format": "audio",
            "roles": None,
            "sample_rate": None,
        }
    )


async def _open(trip: Trip, request: Request) -> aiohttp.ClientResponse:
    """Wait for the segment's slot and open it; the trip is finished when that fails."""
    try:
        await trip.wait(request)
        return await trip.open(request)
    except BaseException as exc:
        trip.finish(CLIENT_CLOSED if isinstance(exc, ClientGone) else code_for(exc))
        raise


def _rate_of(upstream: aiohttp.ClientResponse, asked: int | None) -> int:
    rate = upstream.headers.get("x-sample-rate", "")
    return int(rate) if rate.isdigit() else (asked or 0)


async def speak(
    state: RouterState, body: SpeechRequest, request: Request, segments: list[Segment], payloads: list[JSON]
) -> Response:
    """The response to a script whose segments' ``payloads`` (what each pod receives) are resolved: the
    first segment opened, then the stream."""
    fmt = body.response_format
    asked = preset_rate(fmt, body.sample_rate)
    for later in dict.fromkeys(s.model for s in segments[1:]).keys() - {segments[0].model}:
        state.activator.prewake(later)
    first = Trip(state, segments[0].model, _at(payloads[0], asked), enter(state, segments[0].model), time.monotonic())
    try:
        upstream = await _open(first, request)
    except ClientGone:
        return Response(status_code=int(CLIENT_CLOSED))
    if upstream.status >= 400:
        return await first.error_response(upstream)
    own = _rate_of(upstream, asked)
    rate = codec_rate(fmt, asked or own)
    encoder = ScriptEncoder(fmt, rate, sent_whole(fmt, body.stream_format))
    audio = _audio(state, request, segments, payloads, encoder, (first, upstream, own))
    headers = {"X-Sample-Rate": str(rate), "Cache-Control": "no-store"}
    if body.stream_format == "sse":
        framer = sse.Framer(body.input, fmt, rate)
        return StreamingResponse(_events(audio, framer), media_type=sse.MEDIA_TYPE, headers={**sse.HEADERS, **headers})
    return StreamingResponse(_bytes(audio), media_type=MEDIA_TYPES[fmt], headers=headers)


def _at(payload: JSON, rate: int | None) -> JSON:
    return {**payload, "sample_rate": rate} if rate else payload


async def _audio(
    state: RouterState,
    request: Request,
    segments: list[Segment],
    payloads: list[JSON],
    encoder: ScriptEncoder,
    first: tuple[Trip, aiohttp.ClientResponse, int],
) -> AsyncGenerator[bytes]:
    """The encoded bytes of every segment and pause, in order; :class:`LineFailed` when a later segment fails."""

    async def encoded(data: bytes) -> AsyncIterator[bytes]:
        out = await asyncio.to_thread(encoder.feed, data) if data else b""
        if out:
            yield out

    try:
        for index, segment in enumerate(segments):
            if index == 0:
                trip, upstream, rate = first
            else:
                trip = Trip(
                    state,
                    segment.model,
                    _at(payloads[index], encoder.rate),
                    enter(state, segment.model),
                    time.monotonic(),
                )
                try:
                    upstream = await _open(trip, request)
                except ApiError as exc:
                    raise LineFailed(exc) from exc
                if upstream.status >= 400:
                    status, _content, _headers = await trip.error_answer(upstream)
                    trip.finish(status)
                    raise LineFailed(
                        ApiError(status, f"line {index + 1} ({segment.role}) failed on {segment.model}", "line_failed")
                    )
                rate = _rate_of(upstream, encoder.rate)
            resampler = Resampler(rate, encoder.rate) if rate != encoder.rate else None
            async with contextlib.aclosing(trip.relay(upstream)) as chunks:
                async for chunk in chunks:
                    async for out in encoded(resampler.feed(chunk) if resampler else chunk):
                        yield out
            if resampler is not None:
                async for out in encoded(resampler.finish()):
                    yield out
            async for out in encoded(pause_bytes(segment.pause_after_ms, encoder.rate)):
                yield out
        tail = await asyncio.to_thread(encoder.finish)
        if tail:
            yield tail
    finally:
        encoder.close()


async def _bytes(audio: AsyncGenerator[bytes]) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(audio):
        try:
            async for chunk in audio:
                yield chunk
        except (LineFailed, ClientGone) as exc:
            log.warning("a script's stream was cut: %s", exc)
            raise StreamBroken(str(exc)) from exc


async def _events(audio: AsyncGenerator[bytes], framer: sse.Framer) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(audio):
        try:
            async for chunk in audio:
                yield framer.delta(chunk)
            yield framer.done()
        except LineFailed as exc:
            yield sse.error(exc.error.status, exc.error.message, exc.error.code)
        except StreamBroken as exc:
            yield sse.error(502, str(exc), "upstream_unavailable")
