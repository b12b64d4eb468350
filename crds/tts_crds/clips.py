"""The rules a reference clip (voice cloning) must meet, in one place for every component that checks
clips: the operator (TtsVoice clips), the router (voice uploads) and the inference server (``ref_audio``).

Pure: each component decodes the clip with its own library and hands over what it found
(:class:`ClipFacts`); :func:`clip_problem` says what is wrong, if anything, as a :class:`Problem`
whose ``kind`` each component maps to its own condition reason or error code.

Accepted: WAV (incl. WAVE_FORMAT_EXTENSIBLE and RF64) and FLAC, mono or stereo, 8-192 kHz,
1-30 s, not silent. Both formats are lossless and read by libsndfile everywhere, which is why the
operator (no FFmpeg) can decode every clip the inference server will be sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import names

# libsndfile's container names -> ours
FORMATS = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "FLAC": "flac"}
FORMATS_TEXT = "wav or flac"
MIN_SECONDS = 1.0
MAX_SECONDS = 30.0
MAX_CHANNELS = 2
MIN_SAMPLE_RATE = names.REFERENCE_MIN_SAMPLE_RATE
MAX_SAMPLE_RATE = names.REFERENCE_MAX_SAMPLE_RATE
# a peak below this (of full scale) is silence
SILENCE = 1e-4

Kind = Literal["empty", "too_large", "format", "channels", "sample_rate", "too_short", "too_long", "silent"]


@dataclass(frozen=True)
class ClipFacts:
    """What decoding found; ``container`` is libsndfile's format name (``WAV``, ``FLAC``, ``OGG`` …)."""

    size: int
    container: str
    sample_rate: int
    channels: int
    frames: int
    peak: float | None = None  # largest absolute sample, full scale 1.0; None when not measured

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate > 0 else 0.0


@dataclass(frozen=True)
class Problem:
    kind: Kind
    message: str


def size_problem(size: int, max_bytes: int) -> Problem | None:
    """What can be said before decoding: empty, or too large."""
    if size <= 0:
        return Problem("empty", "the clip is empty")
    if size > max_bytes:
        return Problem("too_large", f"the clip is {size} bytes; at most {max_bytes} are accepted")
    return None


def clip_problem(
    facts: ClipFacts, max_bytes: int, min_seconds: float = MIN_SECONDS, max_seconds: float = MAX_SECONDS
) -> Problem | None:
    """The first rule ``facts`` break, most basic first; None when the clip is fine."""
    early = size_problem(facts.size, max_bytes)
    if early:
        return early
    if facts.container not in FORMATS:
        return Problem("format", f"audio format {facts.container} is not accepted; send {FORMATS_TEXT}")
    if facts.frames <= 0 or facts.sample_rate <= 0:
        return Problem("empty", "the clip contains no audio frames")
    if facts.channels > MAX_CHANNELS:
        return Problem("channels", f"the clip has {facts.channels} channels; send mono or stereo")
    if not MIN_SAMPLE_RATE <= facts.sample_rate <= MAX_SAMPLE_RATE:
        return Problem(
            "sample_rate",
            f"the clip's sample rate is {facts.sample_rate} Hz; reference clips must be "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (16-24 kHz is plenty for cloning)",
        )
    if not min_seconds <= facts.duration <= max_seconds:
        kind: Kind = "too_short" if facts.duration < min_seconds else "too_long"
        return Problem(
            kind,
            f"the clip lasts {facts.duration:.2f} s; reference clips must last {min_seconds:g} to {max_seconds:g} s",
        )
    if facts.peak is not None and facts.peak < SILENCE:
        return Problem("silent", "the clip is silent")
    return None
