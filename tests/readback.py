"""Reading a saved speech file back as people do: libsndfile (``soundfile``), sox and FFmpeg (PyAV),
each asked for the file's length in seconds (tests/component/test_saved_formats.py, ADR 0046)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import soundfile as sf

EXTENSIONS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": "pcm"}
# what the codec may add to the true length, in seconds at 22.05 kHz (why: tests/component/test_saved_formats.py)
EXTRA = {"mp3": (1105 / 22050, 2257 / 22050), "aac": (1024 / 22050, 2048 / 22050), "opus": (-0.0025, 0.0025)}
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
        with av.open(
            str(saved.path), format="s16le", options={"sample_rate": str(saved.rate), "ch_layout": "mono"}
        ) as c:
            return sum(f.samples for f in c.decode(audio=0)) / saved.rate
    with av.open(str(saved.path)) as c:
        stream = c.streams.audio[0]
        return sum(f.samples for f in c.decode(stream)) / stream.codec_context.sample_rate


READERS = {"soundfile": read_soundfile, "soundfile.info": read_soundfile_info, "sox": read_sox, "pyav": read_pyav}


def lengths(saved: Saved) -> dict[str, float]:
    return {name: read(saved) for name, read in READERS.items() if (name, saved.fmt) not in NO_READER}
