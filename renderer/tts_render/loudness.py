"""Integrated loudness after ITU-R BS.1770-4 (K-weighting, 400 ms blocks, absolute and relative gates),
and the gain that brings a role to the chapter's target without pushing a peak over the ceiling.

Pure numpy (the router image has no scipy): the two K-weighting biquads are run once over an impulse
to get their impulse response, and a signal is filtered by FFT convolution with it. The high-pass's
tail (38 Hz, Q 0.5) has decayed by more than 120 dB within the :data:`_IR_SECONDS` kept."""

from __future__ import annotations

import functools
import math

import numpy as np

TARGET_LUFS = -20.0
CEILING_DBFS = -1.0
#: a gain never lifts a role by more than this: near-silent chunks are not blown up into noise
MAX_GAIN_DB = 24.0
_ABSOLUTE_GATE = -70.0
_RELATIVE_GATE = -10.0
_BLOCK_S = 0.4
_STEP_S = 0.1
_IR_SECONDS = 0.25
_SEGMENT = 1 << 18


def _biquads(rate: int) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """The K-weighting's two stages (high shelf, then high-pass) at ``rate``, as libebur128 derives them."""
    f0, gain, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = (
        ((vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0),
        (1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0),
    )
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    highpass = ((1.0, -2.0, 1.0), (1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0))
    return [shelf, highpass]


@functools.lru_cache(maxsize=8)
def k_weighting_ir(rate: int) -> np.ndarray:
    """The K-weighting filter's impulse response at ``rate`` (float64, :data:`_IR_SECONDS` long)."""
    x = np.zeros(int(rate * _IR_SECONDS))
    x[0] = 1.0
    for (b0, b1, b2), (_, a1, a2) in _biquads(rate):
        y = np.empty_like(x)
        x1 = x2 = y1 = y2 = 0.0
        for i, xi in enumerate(x.tolist()):
            yi = b0 * xi + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            x2, x1, y2, y1 = x1, xi, y1, yi
            y[i] = yi
        x = y
    return x


def k_weight(samples: np.ndarray, rate: int, segment: int = _SEGMENT) -> np.ndarray:
    """``samples`` through the K-weighting filter (the same length). FFT convolution by overlap-add in
    segments of ``segment`` samples, so an hour of one role costs a few MB of FFT, not gigabytes."""
    ir = k_weighting_ir(rate)
    size = 1 << (segment + len(ir) - 2).bit_length()
    spectrum = np.fft.rfft(ir, size)
    out = np.zeros(len(samples) + len(ir) - 1)
    data = samples.astype(np.float64)
    for start in range(0, len(data), segment):
        piece = data[start : start + segment]
        filtered = np.fft.irfft(np.fft.rfft(piece, size) * spectrum, size)[: len(piece) + len(ir) - 1]
        out[start : start + len(filtered)] += filtered
    return out[: len(samples)]


def block_powers(samples: np.ndarray, rate: int) -> np.ndarray:
    """The mean K-weighted power of each 400 ms block (100 ms apart) of mono ``samples``; a signal
    shorter than one block is one block. A role's loudness gates its chunks' blocks together
    (:func:`gated_loudness`), so a chapter is measured one chunk at a time."""
    if len(samples) == 0:
        return np.zeros(0)
    power = k_weight(samples, rate) ** 2
    block, step = int(rate * _BLOCK_S), int(rate * _STEP_S)
    if len(power) <= block:
        return np.array([power.mean()])
    sums = np.concatenate(([0.0], np.cumsum(power)))
    starts = np.arange(0, len(power) - block + 1, step)
    return np.asarray((sums[starts + block] - sums[starts]) / block)


def gated_loudness(blocks: np.ndarray) -> float:
    """Integrated loudness in LUFS of blocks' powers: the absolute gate, then the relative one; ``-inf``
    for silence."""
    if blocks.size == 0:
        return -math.inf
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(blocks)
    kept = blocks[loud > _ABSOLUTE_GATE]
    if kept.size == 0:
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(kept.mean()) + _RELATIVE_GATE
    with np.errstate(divide="ignore"):
        kept = kept[-0.691 + 10.0 * np.log10(kept) > relative]
    return -0.691 + 10.0 * math.log10(kept.mean())


def integrated_loudness(samples: np.ndarray, rate: int) -> float:
    """Gated integrated loudness of mono ``samples`` (full scale ±1) in LUFS; ``-inf`` for silence.

    A signal shorter than one 400 ms block is measured as one block."""
    return gated_loudness(block_powers(samples, rate))


def gain_db(loudness: float, peak: float, target: float = TARGET_LUFS, ceiling: float = CEILING_DBFS) -> float:
    """The gain (dB) that brings ``loudness`` to ``target``, lowered so that ``peak`` (linear) stays at or
    under ``ceiling`` dBFS, and never more than :data:`MAX_GAIN_DB`; 0 for silence."""
    if not math.isfinite(loudness) or peak <= 0.0:
        return 0.0
    wanted = min(target - loudness, MAX_GAIN_DB)
    headroom = ceiling - 20.0 * math.log10(peak)
    return min(wanted, headroom)


def db_to_linear(db: float) -> float:
    return float(10.0 ** (db / 20.0))
