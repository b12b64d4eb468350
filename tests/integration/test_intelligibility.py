"""Intelligibility as a measured property: Whisper listens to each engine through the router.

Every engine with real weights speaks the fixed sentences of ``tests/listen.py`` through the
router (WAV, the default voice unless named), Whisper base transcribes each clip, and the corpus
word error rate (English) or character error rate (Mandarin) is asserted:

- piper (`joe`): WER ≤ 0.05, the issue's target;
- espeak-ng English and Mandarin (`cmn`), and Kokoro-82M int8 (ONNX) with its Japanese voice in
  English and Japanese: regression guards above the figures measured when they were set
  (docs/benchmarks.md, "Intelligibility").

The figures are printed whatever the outcome. One Whisper load per module, about 1 to 2 s per clip.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.listen import SENTENCES, SENTENCES_JA, SENTENCES_ZH, cer, listener, wer

from .conftest import Models, Router, wait_router_sees

PIPER_WER_MAX = 0.05  # issue 14's target
# Regression guards, set above what was measured (docs/benchmarks.md, "Intelligibility"): espeak
# en-us WER 0.042 through the router and 0.062 in bench/inference.py (12 sentences; piper 0.000 and
# 0.007: its synthesis is stochastic); espeak cmn CER 0.57–0.67 (10 sentences), 1 to 3 of them at
# CER ≤ 0.25. Whisper base understands espeak's Mandarin poorly, so that guard also asks for a
# sentence heard well, which noise, silence or the wrong language never are. espeak-ng keeps state
# across utterances in one process (the same text differs from request to request from about its
# 64th sample, by a few hundred samples in length), so which sentences are heard well depends on
# what the pod spoke before: 2 of 10 on a fresh pod, 1 of 10 after the English sentences (the order
# of this module), 3 in an earlier session.
# Kokoro-82M int8 (ONNX, the kokoro-onnx release file) with its Japanese voice jf_alpha: English WER
# 0.000 and Japanese CER 0.035 in the engine's component test (docs/benchmarks.md, "Kokoro on the CPU")
KOKORO_EN_WER_MAX = 0.10
KOKORO_JA_CER_MAX = 0.12
KOKORO_URI = "file:///usr/local/share/kube-tts/models/kokoro-82m-int8"  # baked into the cpu image
ESPEAK_EN_WER_MAX = 0.12
ESPEAK_ZH_CER_MAX = 0.80
ESPEAK_ZH_WELL_HEARD = 1  # sentences with CER ≤ 0.25


@pytest.fixture(scope="module")
def hear() -> Callable[[bytes, str], str]:
    """The listener, loaded (and its model assembled) before any timing starts."""
    return listener().transcribe


def deploy(models: Models, router: Router, prefix: str, **spec) -> str:
    name = models.create(prefix, resources={"gpu": 0, "cpu": "1", "memory": "1Gi"}, **spec)
    wait_router_sees(router, name)
    return name


@pytest.fixture(scope="module")
def piper(models: Models, router: Router) -> str:
    return deploy(models, router, "hear-piper")


@pytest.fixture(scope="module")
def espeak(models: Models, router: Router) -> str:
    return deploy(models, router, "hear-espeak", engine="espeak", model={"uri": "package://espeakng-loader"})


@pytest.fixture(scope="module")
def kokoro(models: Models, router: Router) -> str:
    return deploy(models, router, "hear-kokoro", engine="kokoro", model={"uri": KOKORO_URI})


def listen_to(
    router: Router, hear, model: str, sentences: tuple[str, ...], language: str, capsys, **extra
) -> list[str]:
    """Speak each sentence through the router and transcribe it; print what was heard."""
    heard = []
    t0 = time.perf_counter()
    for sentence in sentences:
        resp = router.speak(model, sentence, **extra)
        assert resp.status_code == 200, resp.text
        heard.append(hear(resp.content, language))
    with capsys.disabled():
        print(f"\n# {model} ({language}, {len(sentences)} clips, {time.perf_counter() - t0:.1f} s)")
        for said, got in zip(sentences, heard, strict=True):
            score = wer(said, got) if language == "en" else cer(said, got, language=language)
            print(f"  {score:5.2f} {said!r} -> {got!r}")
    return heard


def report(capsys, what: str, value: float, limit: float) -> None:
    with capsys.disabled():
        print(f"# {what} = {value:.3f} (asserted ≤ {limit})")


def test_piper_is_understood(router: Router, piper: str, hear, capsys):
    heard = listen_to(router, hear, piper, SENTENCES, "en", capsys)
    score = wer(list(SENTENCES), heard)
    report(capsys, "piper WER", score, PIPER_WER_MAX)
    assert score <= PIPER_WER_MAX, heard


def test_espeak_english_is_understood(router: Router, espeak: str, hear, capsys):
    heard = listen_to(router, hear, espeak, SENTENCES, "en", capsys, voice="en-us")
    score = wer(list(SENTENCES), heard)
    report(capsys, "espeak en-us WER", score, ESPEAK_EN_WER_MAX)
    assert score <= ESPEAK_EN_WER_MAX, heard


def test_espeak_mandarin_is_understood(router: Router, espeak: str, hear, capsys):
    heard = listen_to(router, hear, espeak, SENTENCES_ZH, "zh", capsys, voice="cmn")
    score = cer(list(SENTENCES_ZH), heard, capped=True)  # Whisper base loops on some clips
    well = sum(cer(said, got) <= 0.25 for said, got in zip(SENTENCES_ZH, heard, strict=True))
    report(capsys, "espeak cmn CER", score, ESPEAK_ZH_CER_MAX)
    with capsys.disabled():
        print(
            f"# espeak cmn: {well} of {len(SENTENCES_ZH)} sentences at CER ≤ 0.25 (asserted ≥ {ESPEAK_ZH_WELL_HEARD})"
        )
    assert score <= ESPEAK_ZH_CER_MAX, heard
    assert well >= ESPEAK_ZH_WELL_HEARD, heard


def test_kokoro_speaks_english_with_a_japanese_voice(router: Router, kokoro: str, hear, capsys):
    heard = listen_to(router, hear, kokoro, SENTENCES, "en", capsys, voice="jf_alpha")
    score = wer(list(SENTENCES), heard)
    report(capsys, "kokoro-82m int8 jf_alpha English WER", score, KOKORO_EN_WER_MAX)
    assert score <= KOKORO_EN_WER_MAX, heard


def test_kokoro_speaks_japanese(router: Router, kokoro: str, hear, capsys):
    heard = listen_to(router, hear, kokoro, SENTENCES_JA, "ja", capsys, voice="jf_alpha")
    score = cer(list(SENTENCES_JA), heard, language="ja")
    report(capsys, "kokoro-82m int8 jf_alpha Japanese CER", score, KOKORO_JA_CER_MAX)
    assert score <= KOKORO_JA_CER_MAX, heard
