"""A chapter's samples as the file format the job asked for: written as they come (:func:`writer`), or
in memory (:func:`encode`).

All four formats go through soundfile's libsndfile (1.2 encodes MP3 with LAME and Opus in Ogg), the
one audio library the router image already carries besides numpy: PyAV is not in it, and a chapter
needs no FFmpeg. Opus takes only 8, 12, 16, 24 or 48 kHz, so other rates are resampled to 48 kHz."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
from tts_crds.speech import SOUNDFILE_FORMATS

from .join import resample

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_FORMATS = SOUNDFILE_FORMATS


def encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """``samples`` (mono, ±1) at ``rate`` encoded as ``fmt`` (wav, flac, mp3 or opus)."""
    if fmt not in _FORMATS:
        raise ValueError(f"unknown chapter format {fmt!r}; one of {', '.join(_FORMATS)}")
    container, subtype = _FORMATS[fmt]
    if fmt == "opus" and rate not in OPUS_RATES:
        samples, rate = resample(samples, rate, 48000), 48000
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0), rate, format=container, subtype=subtype)
    return buf.getvalue()


def file_rate(rate: int, fmt: str) -> int:
    """The rate a chapter of chunks at ``rate`` is written at: ``rate``, or 48 kHz for Opus at a rate it cannot take."""
    return 48000 if fmt == "opus" and rate not in OPUS_RATES else rate


def writer(path: Path, rate: int, fmt: str) -> sf.SoundFile:
    """An open mono SoundFile at ``path`` that encodes ``fmt`` at ``rate`` (see :func:`file_rate`) as
    blocks are written to it, so a chapter of any length is never whole in memory."""
    if fmt not in _FORMATS:
        raise ValueError(f"unknown chapter format {fmt!r}; one of {', '.join(_FORMATS)}")
    container, subtype = _FORMATS[fmt]
    return sf.SoundFile(path, "w", samplerate=rate, channels=1, format=container, subtype=subtype)
