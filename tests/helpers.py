"""Small helpers shared by the test suites: polling and audio checks."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def eventually(fn: Callable[[], T | None], timeout: float, interval: float = 0.25, what: str = "condition") -> T:
    """Call ``fn`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


@dataclass(frozen=True)
class Audio:
    sample_rate: int
    channels: int
    samples: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def rms(self) -> float:
        """Root-mean-square level on the int16 scale (silence is ~0, speech is thousands)."""
        if not len(self.samples):
            return 0.0
        return float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2)))


def decode_wav(data: bytes) -> Audio:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2, "expected 16-bit PCM"
        frames = w.readframes(w.getnframes())
        return Audio(w.getframerate(), w.getnchannels(), np.frombuffer(frames, dtype="<i2"))


def decode_audio(data: bytes, fmt: str, pcm_rate: int = 22050) -> Audio:
    """Decode any response_format the API speaks (wav, flac, mp3, opus in Ogg via libsndfile; raw pcm)."""
    if fmt == "pcm":
        assert len(data) % 2 == 0, "pcm must be whole 16-bit samples"
        return Audio(pcm_rate, 1, np.frombuffer(data, dtype="<i2"))
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return Audio(rate, samples.shape[1], samples[:, 0])


def sse_events(stream: bytes) -> list[dict]:
    """The JSON payloads of a server-sent-event stream's ``data:`` lines."""
    import json

    events = []
    for block in stream.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"".join(line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:"))
        if data:
            events.append(json.loads(data))
    return events


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
            return float(value)
    return None
