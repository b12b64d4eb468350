"""Speech through the router on the local cluster: the OpenAI SDK in every format, SSE, and streaming
that stops when the client goes away (a pod deleted mid-stream: test_failures.py)."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from openai import OpenAI

from tests.helpers import decode_audio, decode_wav, eventually, metric_value

from .conftest import Models, Router, pod_ready

TEXT = "The quick brown fox jumps over the lazy dog."
# about 3,700 characters: minutes of audio at half speed, far longer than any test waits
LONG_TEXT = " ".join(f"This is sentence number {i} of a long text that nobody will hear." for i in range(55))


def pod_metrics(pod: dict) -> str:
    return httpx.get(f"http://{pod['status']['podIP']}:8000/metrics", timeout=5).text


def pod_status(pod: dict) -> dict:
    return httpx.get(f"http://{pod['status']['podIP']}:8000/v1/status", timeout=5).json()


def drain(chunks) -> int:
    return sum(len(c) for c in chunks)


def check_speech(audio, min_seconds: float = 0.8) -> None:
    assert audio.duration > min_seconds, f"only {audio.duration:.2f}s of audio"
    assert audio.rms > 500, f"RMS {audio.rms:.0f} is too close to silence"


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "pcm"])
def test_openai_sdk_whole_and_streamed(router: Router, speaker: str, fmt: str):
    sdk = OpenAI(base_url=f"{router.url}/v1", api_key=router.key, max_retries=0)
    whole = sdk.audio.speech.create(model=speaker, voice="default", input=TEXT, response_format=fmt)
    rate = int(whole.response.headers.get("x-sample-rate", "22050"))
    audio = decode_audio(whole.content, fmt, rate)
    check_speech(audio)
    # Piper speaks at 22.05 kHz; Opus only carries 48 kHz-family rates and decodes at 48 kHz
    assert audio.sample_rate == (48000 if fmt == "opus" else 22050)
    with sdk.audio.speech.with_streaming_response.create(
        model=speaker, voice="default", input=TEXT, response_format=fmt
    ) as resp:
        chunks = list(resp.iter_bytes())
    streamed = decode_audio(b"".join(chunks), fmt, rate)
    check_speech(streamed)
    # the same text at the same speed: durations agree within a tenth of a second or so
    assert abs(streamed.duration - audio.duration) < 0.3


def test_sse_relays_audio_events(router: Router, speaker: str):
    events = router.speech_events(model=speaker, input=TEXT, response_format="wav")
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert deltas and events[-1]["type"] == "speech.audio.done"
    check_speech(decode_wav(b"".join(base64.b64decode(e["audio"]) for e in deltas)))


def test_client_disconnect_cancels_the_upstream_request(router: Router, speaker: str, models: Models):
    (pod,) = [p for p in models.pods(speaker) if pod_ready(p)]
    with router.speech_stream(model=speaker, input=LONG_TEXT, response_format="pcm", speed=0.5) as resp:
        assert resp.status_code == 200
        chunks = resp.iter_raw()  # keep a reference: a dropped iterator closes the stream
        assert next(chunks)
        assert pod_status(pod)["inflight_requests"] == 1
    # the client is gone: the router closes its upstream request and the pod stops synthesising
    eventually(lambda: pod_status(pod)["inflight_requests"] == 0, timeout=10, what="the pod to drop the request")
    eventually(
        lambda: (
            metric_value(
                httpx.get(f"{router.url}/metrics").text, "kubetts_router_inflight_requests", deployment=speaker
            )
            == 0
        ),
        timeout=5,
        what="the router to count the request finished",
    )
    produced = metric_value(pod_metrics(pod), "kubetts_inference_audio_seconds_total")
    time.sleep(2)
    assert metric_value(pod_metrics(pod), "kubetts_inference_audio_seconds_total") == produced, (
        "the pod kept synthesising after the client left"
    )
