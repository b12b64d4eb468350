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
