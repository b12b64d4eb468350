"""TtsVoice validation: decode the reference clip and judge it (pure; unit-tested)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from tts_crds import clips

MAX_BYTES = 10 * 1024 * 1024
# the kinds of clip problem (tts_crds.clips) as TtsVoice Ready reasons
REASONS = {"too_large": "AudioTooLarge", "too_short": "AudioTooShort", "too_long": "AudioTooLong"}


@dataclass(frozen=True)
class ClipInfo:
    duration: float
    sample_rate: int
    channels: int
    sha256: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    message: str
    clip: ClipInfo | None = None


def inspect_clip(data: bytes) -> Verdict:
    """Decode ``data`` and check it against the reference-clip rules (``tts_crds.clips``)."""
    sha = hashlib.sha256(data).hexdigest()
    early = clips.size_problem(len(data), MAX_BYTES)
    if early:
        return Verdict(False, REASONS.get(early.kind, "AudioInvalid"), early.message)
    try:
        container = sf.info(io.BytesIO(data)).format
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        return Verdict(False, "AudioInvalid", f"cannot decode the clip as audio: {exc}")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    facts = clips.ClipFacts(len(data), container, int(rate), samples.shape[1], len(samples), peak)
    clip = None
    if facts.frames > 0 and facts.sample_rate > 0:
        clip = ClipInfo(round(facts.duration, 3), facts.sample_rate, facts.channels, sha)
    problem = clips.clip_problem(facts, MAX_BYTES)
    if problem:
        return Verdict(False, REASONS.get(problem.kind, "AudioInvalid"), problem.message, clip)
    assert clip is not None
    return Verdict(True, "Validated", f"{clip.duration:.1f} s at {clip.sample_rate} Hz", clip)


def check_speaker(speaker: str, speakers: list[str] | None) -> Verdict:
    """A built-in speaker against what the model published (None: not known yet)."""
    if speakers is None:
        return Verdict(False, "SpeakersUnknown", "the model has not published its speakers yet (never served)")
    if speaker not in speakers:
        shown = ", ".join(speakers[:20]) + (" …" if len(speakers) > 20 else "")
        return Verdict(False, "SpeakerNotFound", f"speaker {speaker!r} is not one of the model's: {shown}")
    return Verdict(True, "SpeakerFound", f"built-in speaker {speaker!r}")
