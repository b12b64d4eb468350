"""The bridge (``python -m tts_inference.bridge``'s app) in front of real HTTP speech servers on
loopback, as in a server-engine pod (ADR 0047, 0048):

- the seeds' API (``api: tts-api``, ``POST /api/tts``) through the adapter, against a small real
  server wrapping espeak-ng (tests/seed_server.py): every format decodes and Whisper hears it;
- servers that fail: a 500, a 200 that is not audio, a server that never becomes ready, one that
  is not there: clean errors in OpenAI's shape, never a hang.

The two third-party servers from PyPI run in their images on the local cluster
(tests/integration/test_servers.py).
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from tts_inference.bridge.app import create_app
from tts_inference.bridge.settings import BridgeSettings

from tests.helpers import LiveServer, decode_audio, sse_events
from tests.listen import listener, wer
from tests.seed_server import seed_app

SEED = {
    "image": "seed",
    "api": "tts-api",
    "paths": {"speech": "/api/tts", "health": "/api/health", "ready": "/api/ready", "voices": "/api/speakers"},
    "formats": ["wav"],
}
SENTENCE = "Please call Stella and ask her to bring these things with her from the store."


@pytest.fixture(scope="module")
def mode() -> dict[str, str]:
    return {}


@pytest.fixture(scope="module")
def seed(mode):
    with LiveServer(seed_app(mode)) as server:
        yield server


@pytest.fixture(scope="module")
def bridge(seed):
    port = int(seed.url.rsplit(":", 1)[1])
    settings = BridgeSettings(server=json.dumps({**SEED, "port": port}))
    with LiveServer(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(autouse=True)
def healthy(mode):
    mode.clear()
    yield
    mode.clear()


def speak(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/v1/audio/speech", json={"model": "seed", "input": SENTENCE, **body})


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_the_adapter_gives_every_format_from_a_wav_only_server(bridge, fmt):
    resp = speak(bridge, response_format=fmt)
    assert resp.status_code == 200, resp.text
    rate = int(resp.headers.get("x-sample-rate", 0))  # converted answers carry it; pcm always is one
    audio = decode_audio(resp.content, fmt, rate)
    assert audio.duration > 2.0 and audio.rms > 300


def test_whisper_hears_the_adapted_server(bridge):
    resp = speak(bridge, response_format="wav")
    heard = listener().transcribe(resp.content, "en")
    print(f"\nheard: {heard!r}")
    assert wer(SENTENCE, heard) <= 0.15


def test_json_base64_answers_voices_readiness_and_sse(bridge, mode):
    mode["speech"] = "base64"
    assert decode_audio(speak(bridge, response_format="mp3").content, "mp3").duration > 2.0
    voices = bridge.get("/v1/audio/voices").json()
    assert [v["id"] for v in voices["data"]] == ["en-us", "en-gb"] and voices["default"] == "en-us"
    assert bridge.get("/readyz").status_code == 200
    events = sse_events(speak(bridge, response_format="wav", stream_format="sse").content)
    assert [e["type"] for e in events][-1] == "speech.audio.done"
    assert sum(e["type"] == "speech.audio.delta" for e in events) >= 1
    bad = speak(bridge, voice="klingon")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "voice_not_found"


def test_a_failing_server_is_a_502_in_openai_shape_and_shows_in_status(bridge, mode):
    mode["speech"] = "error"
    resp = speak(bridge)
    assert resp.status_code == 502
    assert "CUDA out of memory" in resp.json()["error"]["message"]
    status = bridge.get("/v1/status").json()
    assert "CUDA out of memory" in status["error"] and status["server_errors"] >= 1


def test_a_server_answering_something_else_than_audio_is_a_502(bridge, mode):
    mode["speech"] = "text"
    resp = speak(bridge, response_format="mp3")
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "server_not_audio"
    assert "text/plain" in resp.json()["error"]["message"]


def test_a_server_that_is_not_ready_keeps_the_bridge_unready(bridge, mode):
    mode["ready"] = "no"
    resp = bridge.get("/readyz")
    assert resp.status_code == 503 and "503" in resp.json()["error"]


def test_a_server_that_is_not_there_is_a_503_at_once():
    settings = BridgeSettings(server=json.dumps({**SEED, "port": 9}))  # nothing listens on the discard port
    with LiveServer(create_app(settings)) as server:
        resp = httpx.post(f"{server.url}/v1/audio/speech", json={"model": "m", "input": "Hi."}, timeout=10)
        assert resp.status_code in (502, 503), resp.text  # voices first: the server is unreachable
        assert resp.json()["error"]["message"]
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503


def test_a_form_server_gets_a_cloned_voices_clip_and_transcript(seed, mode):
    """GLM-TTS's shape: multipart ``text`` and a ``prompt_audio`` file (the router sends a cloned
    voice's clip as ref_audio)."""
    port = int(seed.url.rsplit(":", 1)[1])
    glm = {
        **SEED,
        "port": port,
        "ttsApi": {"encoding": "form", "referenceAudioField": "prompt_audio", "referenceTextField": "prompt_text"},
    }
    clip = speak_direct(seed)
    with LiveServer(create_app(BridgeSettings(server=json.dumps(glm)))) as server:
        url = f"{server.url}/v1/audio/speech"
        assert httpx.get(f"{server.url}/v1/audio/voices", timeout=10).json()["can_clone"] is True
        body = {"model": "m", "input": SENTENCE, "ref_audio": base64.b64encode(clip).decode(), "ref_text": "A clip."}
        resp = httpx.post(url, json={**body, "response_format": "flac"}, timeout=60)
        assert resp.status_code == 200, resp.text
        assert decode_audio(resp.content, "flac").duration > 2.0
        sent = json.loads(mode["last"])
        assert sent["prompt_audio_bytes"] == str(len(clip)) and sent["prompt_text"] == "A clip."
        bad = httpx.post(url, json={**body, "ref_audio": "%%%"}, timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "ref_audio"


def test_a_server_that_cannot_clone_refuses_a_clip(bridge):
    resp = speak(bridge, ref_audio=base64.b64encode(b"RIFF").decode())
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "cloning_unsupported"


def speak_direct(seed) -> bytes:
    return httpx.post(f"{seed.url}/api/tts", json={"text": "A reference clip."}, timeout=30).content
