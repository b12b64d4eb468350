"""TtsVoice validation: decode the reference clip and judge it (pure; unit-tested)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import soundfile as sf
from tts_crds import names

MIN_SECONDS = 1.0
MAX_SECONDS = 30.0
MAX_BYTES = 10 * 1024 * 1024


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
    """Decode ``data`` (wav, flac, ogg …) and check the length rules of a reference clip."""
    sha = hashlib.sha256(data).hexdigest()
    if not data:
        return Verdict(False, "AudioInvalid", "the clip is empty")
    if len(data) > MAX_BYTES:
        return Verdict(False, "AudioTooLarge", f"the clip is {len(data)} bytes; at most {MAX_BYTES} are accepted")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        return Verdict(False, "AudioInvalid", f"cannot decode the clip as audio: {exc}")
    if info.frames <= 0 or info.samplerate <= 0:
        return Verdict(False, "AudioInvalid", "the clip has no audio frames")
    clip = ClipInfo(round(info.frames / info.samplerate, 3), int(info.samplerate), int(info.channels), sha)
    if clip.channels > 2:
        return Verdict(False, "AudioInvalid", f"{clip.channels} channels; use mono or stereo", clip)
    if not names.REFERENCE_MIN_SAMPLE_RATE <= clip.sample_rate <= names.REFERENCE_MAX_SAMPLE_RATE:
        low, high = names.REFERENCE_MIN_SAMPLE_RATE, names.REFERENCE_MAX_SAMPLE_RATE
        return Verdict(False, "AudioInvalid", f"sample rate {clip.sample_rate} Hz; use {low}-{high} Hz", clip)
    if clip.duration > MAX_SECONDS:
        return Verdict(False, "AudioTooLong", f"the clip is {clip.duration:.1f} s; at most {MAX_SECONDS:.0f} s", clip)
    if clip.duration < MIN_SECONDS:
        return Verdict(False, "AudioTooShort", f"the clip is {clip.duration:.2f} s; at least {MIN_SECONDS:.0f} s", clip)
    return Verdict(True, "Validated", f"{clip.duration:.1f} s at {clip.sample_rate} Hz", clip)


def check_speaker(speaker: str, speakers: list[str] | None) -> Verdict:
    """A built-in speaker against what the model published (None: not known yet)."""
    if speakers is None:
        return Verdict(False, "SpeakersUnknown", "the model has not published its speakers yet (never served)")
    if speaker not in speakers:
        shown = ", ".join(speakers[:20]) + (" …" if len(speakers) > 20 else "")
        return Verdict(False, "SpeakerNotFound", f"speaker {speaker!r} is not one of the model's: {shown}")
    return Verdict(True, "SpeakerFound", f"built-in speaker {speaker!r}")
