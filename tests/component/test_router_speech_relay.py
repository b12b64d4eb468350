"""The router's lean speech path (``tts_api.relay``, ADR 0053) on real sockets: the router app served
by uvicorn, fake pods on loopback addresses at the inference port, an HTTP client in front.

What the relay answers itself must be what the FastAPI route answered: the same statuses, error
bodies and headers, the same metrics, and the pod learns when the client goes away. The relay
passes on to FastAPI any content type other than ``application/json``, so the same request sent as
``application/merge-patch+json`` (which FastAPI reads as JSON) is answered by the route: the tests
compare the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import generate_latest
from tts_api.app import create_app
from tts_api.settings import RouterSettings
from tts_api.state import RouterState
from tts_crds import names

from tests.helpers import metric_value, sse_events
from tests.router_offline import offline_state

KEY = "sk-relay-test"
PASSED_ON = "application/merge-patch+json"  # JSON to FastAPI, not to the relay
AUDIO = [b"\x01\x02" * 500, b"\x03\x04" * 700]


# --- fake pods ------------------------------------------------------------------------------------


@dataclass
class Pod:
    """A fake inference pod: what it was sent, and whether a client's connection to it closed."""

    behaviour: str = "speaks"
    ip: str = ""
    requests: list[dict] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next((int(x.split(":", 1)[1]) for x in lines if x.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length) if length else b""
                if lines[0].startswith("GET"):  # the router asks for the model's speakers
                    voices = b'{"default": "en", "data": [{"id": "en", "name": "en", "language": "en"}]}'
                    writer.write(_answer(200, "application/json", voices))
                    continue
                self.requests.append(json.loads(body))
                if not await getattr(self, self.behaviour)(reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            writer.close()

    async def speaks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(_chunked_head() + b"".join(_chunk(c) for c in AUDIO) + b"0\r\n\r\n")
        await writer.drain()
        return True

    async def speaks_slowly(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """The first chunk, then the rest once released (or never: until the client's connection closes)."""
        writer.write(_chunked_head() + _chunk(AUDIO[0]))
        await writer.drain()
        release = asyncio.ensure_future(self.release.wait())
        gone = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait({release, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in (release, gone):
            task.cancel()
        if gone in done:
            return False
        writer.write(_chunk(AUDIO[1]) + b"0\r\n\r\n")
        await writer.drain()
        return True

    async def breaks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(_chunked_head() + _chunk(AUDIO[0]))
        await writer.drain()
        return False  # closed without the chunked body's end

    async def refuses(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        error = {"error": {"message": "voice 'nobody' is not a speaker of this model", "code": "voice_not_found"}}
        writer.write(_answer(400, "application/json", json.dumps(error).encode()))
        return True

    async def fails(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(_answer(500, "text/plain", b"boom"))
        return True


def _answer(status: int, ctype: str, body: bytes) -> bytes:
    return f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


def _chunked_head() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: audio/pcm\r\nx-sample-rate: 22050\r\nx-pod-only: 1\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@contextlib.asynccontextmanager
async def serving(pod: Pod) -> AsyncIterator[Pod]:
    for _ in range(20):
        ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with contextlib.suppress(OSError):
            server = await asyncio.start_server(pod.handle, ip, names.INFERENCE_PORT)
            break
    pod.ip = ip
    async with server:
        yield pod


# --- the router -----------------------------------------------------------------------------------


def _state(settings: RouterSettings, pod_ip: str) -> RouterState:
    deployments = {
        "robot": {
            "metadata": {"name": "robot", "namespace": "t", "generation": 1},
            "spec": {"engine": "espeak", "model": {"uri": "package://x"}, "replicas": 1, "modelAliases": ["tts-1"]},
        },
        "ears": {
            "metadata": {"name": "ears", "namespace": "t", "generation": 1},
            "spec": {"engine": "whisper", "model": {"uri": "package://x"}, "replicas": 1},
        },
    }
    labels = {names.LABEL_DEPLOYMENT: "robot"}
    pods = {
        "robot-0": {
            "metadata": {"name": "robot-0", "uid": "u", "labels": labels},
            "status": {"podIP": pod_ip, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
    }
    return offline_state(settings, deployments, pods)


@dataclass
class Router:
    url: str
    state: RouterState

    def metric(self, name: str, **labels: str) -> float:
        text = generate_latest(self.state.metrics.registry).decode()
        return metric_value(text, name, **labels) or 0.0


@contextlib.asynccontextmanager
async def router(pod: Pod, **settings: Any) -> AsyncIterator[Router]:
    """The router app served by uvicorn on this loop, its state built as its lifespan would."""
    config = RouterSettings(**{"api_keys": KEY, "namespace": "t", "rate_limit_per_second": 0, **settings})
    state = _state(config, pod.ip)
    app = create_app(config)
    app.state.router = state
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    served = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(served)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await _until(lambda: server.started)
    try:
        yield Router(f"http://127.0.0.1:{sock.getsockname()[1]}", state)
    finally:
        server.should_exit = True
        await task
        await state.upstream.close()
        sock.close()


async def _post(
    r: Router, body: bytes | dict, ctype: str = "application/json", key: str | None = KEY
) -> httpx.Response:
    headers = {"Content-Type": ctype, **({"Authorization": f"Bearer {key}"} if key is not None else {})}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(f"{r.url}/v1/audio/speech", content=content, headers=headers)


def _seen(resp: httpx.Response) -> tuple[int, str, dict[str, str]]:
    """What a client sees of an answer: status, body, and the headers that are not per-response."""
    skip = {"date", "server", "content-length"}
    return resp.status_code, resp.text, {k: v for k, v in resp.headers.items() if k not in skip}


# --- the tests ------------------------------------------------------------------------------------

GOOD = {"model": "tts-1", "input": "Hi.", "voice": "default", "response_format": "pcm"}


async def test_the_pods_audio_and_headers_come_through_as_the_route_sent_them():
    async with serving(Pod()) as pod, router(pod) as r:
        relayed, routed = await _post(r, GOOD), await _post(r, GOOD, PASSED_ON)
        assert relayed.status_code == 200 and relayed.content == b"".join(AUDIO)
        assert _seen(relayed) == _seen(routed)
        assert relayed.headers["x-sample-rate"] == "22050" and "x-pod-only" not in relayed.headers
        # the pod got the request as the route builds it: the alias resolved, defaults filled in
        assert pod.requests[0] == pod.requests[1]
        assert pod.requests[0]["model"] == "robot" and pod.requests[0]["speed"] == 1.0
        assert r.metric("kubetts_router_requests_total", deployment="robot", code="200") == 2
        assert r.metric("kubetts_router_time_to_first_byte_seconds_count", deployment="robot") == 2
        assert r.metric("kubetts_router_request_duration_seconds_count", deployment="robot") == 2
        assert r.state.dispatcher.inflight("robot") == 0


BAD = [
    pytest.param(GOOD, None, id="no key"),
    pytest.param(GOOD, "sk-wrong", id="wrong key"),
    pytest.param(b"not json", KEY, id="not json"),
    pytest.param(b"not json", None, id="not json and no key"),
    pytest.param({"model": "robot"}, None, id="no input and no key"),
    pytest.param({"model": "robot"}, KEY, id="no input"),
    pytest.param({**GOOD, "speed": 9}, KEY, id="speed out of range"),
    pytest.param({**GOOD, "response_format": "ogg"}, KEY, id="unknown format"),
    pytest.param({**GOOD, "surprise": 1}, KEY, id="unknown field"),
    pytest.param({**GOOD, "model": "nobody"}, KEY, id="unknown model"),
    pytest.param({**GOOD, "model": "ears"}, KEY, id="a transcription model"),
    pytest.param({**GOOD, "input": "a" * 5000}, KEY, id="input too long"),
    pytest.param({**GOOD, "timestamps": "word"}, KEY, id="timestamps without sse"),
]


@pytest.mark.parametrize(("body", "key"), BAD)
async def test_a_bad_request_gets_the_routes_own_answer_and_is_counted_once(body, key):
    async with serving(Pod()) as pod, router(pod) as r:
        relayed = await _post(r, body, key=key)
        counted = (r.metric("kubetts_router_rejected_requests_total", reason="auth"), _requests(r))
        routed = await _post(r, body, PASSED_ON, key=key)
        assert 400 <= relayed.status_code < 500, relayed.text
        assert _seen(relayed) == _seen(routed)
        assert relayed.json()["error"].keys() >= {"message", "type", "code"}
        # the second request counted as much as the first: nothing twice on either path
        again = (r.metric("kubetts_router_rejected_requests_total", reason="auth"), _requests(r))
        assert again == (2 * counted[0], 2 * counted[1])
        assert pod.requests == []


def _requests(r: Router) -> float:
    return sum(
        r.metric("kubetts_router_requests_total", deployment=d, code=c)
        for d in ("", "robot", "ears")
        for c in ("400", "404")
    )


async def test_the_rate_limit_answers_429_with_retry_after():
    async with serving(Pod()) as pod, router(pod, rate_limit_per_second=0.01, rate_limit_burst=1) as r:
        assert (await _post(r, GOOD)).status_code == 200
        limited = await _post(r, GOOD)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(limited.headers["retry-after"]) >= 1
        assert r.metric("kubetts_router_rejected_requests_total", reason="rate_limit") == 1


@pytest.mark.parametrize(
    ("behaviour", "status", "code"), [("refuses", 400, "voice_not_found"), ("fails", 502, "upstream_error")]
)
async def test_a_pods_error_is_passed_on_as_the_route_did(behaviour, status, code):
    async with serving(Pod(behaviour)) as pod, router(pod) as r:
        relayed, routed = await _post(r, GOOD), await _post(r, GOOD, PASSED_ON)
        assert relayed.status_code == status and relayed.json()["error"]["code"] == code
        assert _seen(relayed) == _seen(routed)
        assert r.metric("kubetts_router_requests_total", deployment="robot", code=str(status)) == 2


async def test_a_stream_that_breaks_aborts_the_clients_response_and_counts_502():
    async with serving(Pod("breaks")) as pod, router(pod) as r:
        with pytest.raises(httpx.RemoteProtocolError):
            await _post(r, GOOD)
        assert r.metric("kubetts_router_requests_total", deployment="robot", code="502") == 1
        assert r.state.dispatcher.inflight("robot") == 0


async def _leave_after_first_chunk(r: Router) -> None:
    async with (
        httpx.AsyncClient(timeout=20) as http,
        http.stream("POST", f"{r.url}/v1/audio/speech", json=GOOD, headers={"Authorization": f"Bearer {KEY}"}) as resp,
    ):
        assert resp.status_code == 200
        await anext(resp.aiter_raw())
    # leaving the block closes the connection mid-stream


async def test_a_client_that_leaves_mid_stream_closes_the_pods_connection_and_counts_499():
    async with serving(Pod("speaks_slowly")) as pod, router(pod) as r:
        await _leave_after_first_chunk(r)
        await asyncio.wait_for(pod.closed.wait(), 10)  # the pod learns that nobody listens
        await _until(lambda: r.metric("kubetts_router_requests_total", deployment="robot", code="499") == 1)
        assert r.state.dispatcher.inflight("robot") == 0


async def test_a_client_that_leaves_the_queue_frees_its_place_and_the_rest_are_served():
    async with serving(Pod("speaks_slowly")) as pod, router(pod, pod_concurrency=1) as r:
        first = asyncio.create_task(_post(r, GOOD))  # holds the one slot until released
        await _until(lambda: r.state.dispatcher.inflight("robot") == 1)
        async with httpx.AsyncClient(timeout=20) as http:
            waiting = asyncio.create_task(
                http.post(f"{r.url}/v1/audio/speech", json=GOOD, headers={"Authorization": f"Bearer {KEY}"})
            )
            await _until(lambda: r.state.dispatcher.queued("robot") == 1)
            waiting.cancel()  # the client gives up while its request waits
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
        await _until(lambda: r.state.dispatcher.queued("robot") == 0)
        await _until(lambda: r.metric("kubetts_router_requests_total", deployment="robot", code="499") == 1)
        pod.release.set()
        assert (await first).content == b"".join(AUDIO)
        assert r.metric("kubetts_router_requests_total", deployment="robot", code="200") == 1
        assert len(pod.requests) == 1  # the one that left never reached the pod


async def test_a_deployment_the_watch_replaced_is_what_the_next_request_sees():
    """The router keeps what it parsed from its caches (specs, the alias table) until an object changes."""
    async with serving(Pod()) as pod, router(pod) as r:
        robot = r.state.deployments.objects["robot"]
        r.state.deployments.objects["robot"] = {**robot, "spec": {**robot["spec"], "modelAliases": ["bot"]}}
        assert (await _post(r, {**GOOD, "model": "bot"})).status_code == 200
        r.state.deployments.objects["robot"] = robot  # the alias dropped again
        gone = await _post(r, {**GOOD, "model": "bot"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"


async def test_sse_and_other_content_types_are_answered_by_the_route():
    async with serving(Pod()) as pod, router(pod) as r:
        events = sse_events((await _post(r, {**GOOD, "stream_format": "sse"})).content)
        assert [e["type"] for e in events][-1] == "speech.audio.done"
        plain = await _post(r, json.dumps(GOOD).encode(), "text/plain")
        assert plain.status_code == 400 and plain.json()["error"]["code"] == "invalid_value"


async def _until(check: Callable[[], bool]) -> None:
    """Until ``check()`` holds (a state the router reaches on its own loop), 10 s at most."""
    async with asyncio.timeout(10):
        while not check():  # noqa: ASYNC110 (the router's own state: nothing to wait on)
            await asyncio.sleep(0.02)
