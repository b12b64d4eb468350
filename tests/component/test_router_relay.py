"""The router's speech relay against pods on real sockets: a pod that closes the connection without
answering (a pod shutting down closes its kept-alive connections, and a request can cross that
close) gets the request sent to another pod; with no other pod the request times out cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from tts_api.dispatch import Dispatcher
from tts_api.metrics import RouterMetrics
from tts_api.proxy import Trip
from tts_api.routing import Endpoint, LeastOutstanding
from tts_api.state import pod_session
from tts_crds.http_errors import ApiError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    await reader.readexactly(length)


async def closes_without_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        await _read_request(reader)
    writer.close()


async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: audio/pcm\r\ncontent-length: 5\r\n\r\naudio")
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def pod(name: str, handler: Handler) -> AsyncIterator[Endpoint]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield Endpoint(name, "127.0.0.1", port)


class Pods:
    def __init__(self) -> None:
        self.ready: list[Endpoint] = []

    def __call__(self, model: str) -> list[Endpoint]:
        return self.ready


@contextlib.asynccontextmanager
async def router_state(pods: Pods, activation_s: float = 5) -> AsyncIterator[Any]:
    dispatcher = Dispatcher(LeastOutstanding(1), pods, 10)
    settings = SimpleNamespace(upstream_connect_timeout=2.0, upstream_read_timeout=5.0)
    session = pod_session(settings)  # type: ignore[arg-type]
    try:
        yield SimpleNamespace(
            upstream=session,
            dispatcher=dispatcher,
            metrics=RouterMetrics("test", dispatcher, lambda: ["m"]),
            endpoints=pods,
            activation_timeout=lambda model: activation_s,
        )
    finally:
        await session.close()


async def test_a_pod_that_closes_without_answering_gets_the_request_sent_to_another():
    pods = Pods()
    async with (
        pod("closer", closes_without_answering) as closer,
        pod("good", answers) as good,
        router_state(pods) as state,
    ):
        pods.ready = [closer]
        ticket = state.dispatcher.enter("m")
        assert ticket.endpoint == closer
        pods.ready = [closer, good]
        trip = Trip(state, "m", {"model": "m", "input": "hi"}, ticket, time.monotonic())
        upstream = await asyncio.wait_for(trip.open(None), 10)
        try:
            assert upstream.status == 200 and await upstream.read() == b"audio"
        finally:
            upstream.release()
        assert ticket.endpoint == good
        assert state.metrics.retries.labels("m")._value.get() == 1


async def test_with_no_other_pod_the_request_times_out_cleanly():
    pods = Pods()
    async with pod("closer", closes_without_answering) as closer, router_state(pods, activation_s=1) as state:
        pods.ready = [closer]
        ticket = state.dispatcher.enter("m")
        trip = Trip(state, "m", {"model": "m", "input": "hi"}, ticket, time.monotonic())
        with pytest.raises(ApiError) as err:
            await asyncio.wait_for(trip.open(None), 10)
        # each pod is tried once: the closer is not asked again, the request waits for another pod
        assert err.value.status == 504 and err.value.code == "queue_timeout"


def _requests(state: Any, code: str) -> float:
    return state.metrics.requests.labels("m", code)._value.get()


async def test_a_relay_read_to_the_end_counts_200_and_one_the_client_left_counts_499():
    pods = Pods()
    async with pod("good", answers) as good, router_state(pods) as state:
        pods.ready = [good]
        trip = Trip(state, "m", {"model": "m", "input": "hi"}, state.dispatcher.enter("m"), time.monotonic())
        body = b"".join([chunk async for chunk in trip.relay(await trip.open(None))])
        assert body == b"audio" and _requests(state, "200") == 1
    async with pod("good", answers) as good, router_state(pods) as state:
        pods.ready = [good]
        left = Trip(state, "m", {"model": "m", "input": "hi"}, state.dispatcher.enter("m"), time.monotonic())
        relay = left.relay(await left.open(None))
        await relay.__anext__()
        await relay.aclose()  # the client went away mid-stream
        assert _requests(state, "499") == 1 and left.done
        assert state.dispatcher.inflight("m") == 0


def test_what_ended_a_request_maps_to_one_status():
    from tts_api.proxy import code_for

    assert code_for(ApiError(504, "slow", "activation_timeout")) == "504"
    assert code_for(asyncio.CancelledError()) == "499"
    assert code_for(GeneratorExit()) == "499"
