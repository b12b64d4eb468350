"""Audio encoding through libsndfile (soundfile). Pure functions over int16 mono arrays."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

# response_format -> (libsndfile container, subtype)
_SNDFILE = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}

SUPPORTED = frozenset({*_SNDFILE, "pcm"})


class UnsupportedFormat(ValueError):
    pass


def encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode mono int16 ``samples`` as ``fmt`` (wav, flac, mp3, or pcm = raw s16le)."""
    if fmt == "pcm":
        return samples.astype("<i2", copy=False).tobytes()
    if fmt not in _SNDFILE:
        raise UnsupportedFormat(
            f"response_format {fmt!r} is not supported by this server yet; use one of {', '.join(sorted(SUPPORTED))}"
        )
    container, subtype = _SNDFILE[fmt]
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=container, subtype=subtype)
    return buf.getvalue()
