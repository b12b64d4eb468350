"""A chapter's audio from its chunks: one rate, one loudness per role, soft edges, the planned pauses.

Pure: chunks come in as float arrays with their rate, pause and role; one float32 mono array comes
out. The order of steps is the ADR's: resample every chunk (soxr) to the highest rate among them,
match loudness per role (all of a role's chunks in the chapter measured together, so a role keeps its
own dynamics from line to line), fade 5 ms in and out at each chunk's edges (a raised cosine, so a
chunk that starts or stops mid-wave does not click), then exactly ``pause_after_ms`` of silence
after each chunk, rounded to the sample.

A book's chapter is long (30,000 characters are 25 minutes: 33 M samples, ~1 GB as the float64 the
loudness needs), so nothing here holds more than one chunk: :func:`role_gains` takes the pieces once to
measure them (each role's 400 ms blocks, gated together), :func:`parts` a second time to yield the
chapter's audio in order, which the encoder writes as it comes (``chapters.join_chapter``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import soxr

from .loudness import block_powers, db_to_linear, gain_db, gated_loudness

FADE_S = 0.005


@dataclass(frozen=True)
class Piece:
    """One chunk's audio as the join sees it: mono samples (full scale ±1) at ``rate``."""

    samples: np.ndarray
    rate: int
    pause_after_ms: int
    role: str = ""


def mono(samples: np.ndarray) -> np.ndarray:
    """Frames by channels (or already mono) as mono float32."""
    data = np.asarray(samples, dtype=np.float32)
    return data.mean(axis=1).astype(np.float32) if data.ndim == 2 else data


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``target`` Hz (soxr's high quality); unchanged when the rates are equal."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(samples.astype(np.float32), rate, target, quality="HQ"), dtype=np.float32)


def pause_samples(pause_ms: int, rate: int) -> int:
    return round(pause_ms * rate / 1000)


def fade(samples: np.ndarray, rate: int, seconds: float = FADE_S) -> np.ndarray:
    """A copy with raised-cosine fades in and out of ``seconds`` each (shorter for a chunk under two fades):
    the first and last samples are 0."""
    out = samples.astype(np.float32, copy=True)
    n = min(round(rate * seconds), len(out) // 2)
    if n == 0:
        return out
    ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(np.float32)
    out[:n] *= ramp
    out[len(out) - n :] *= ramp[::-1]
    return out


def role_gains(pieces: Iterable[Piece], rate: int) -> dict[str, float]:
    """The linear gain for each role: its chunks' joint loudness (their blocks gated together) to the
    target, peaks under the ceiling. ``pieces`` (at ``rate``) are read once, one at a time."""
    blocks: dict[str, list[np.ndarray]] = {}
    peaks: dict[str, float] = {}
    for p in pieces:
        blocks.setdefault(p.role, []).append(block_powers(p.samples, rate))
        peak = float(np.max(np.abs(p.samples))) if p.samples.size else 0.0
        peaks[p.role] = max(peaks.get(p.role, 0.0), peak)
    return {
        role: db_to_linear(gain_db(gated_loudness(np.concatenate(found)), peaks[role]))
        for role, found in blocks.items()
    }


def target_rate(pieces: Sequence[Piece]) -> int:
    return max(p.rate for p in pieces)


def parts(pieces: Iterable[Piece], gains: dict[str, float], rate: int) -> Iterator[np.ndarray]:
    """The chapter's audio in order: each chunk (at ``rate``) with its role's gain and its fades, then
    its pause as silence."""
    for piece in pieces:
        yield fade(np.clip(piece.samples * gains[piece.role], -1.0, 1.0), rate)
        yield np.zeros(pause_samples(piece.pause_after_ms, rate), dtype=np.float32)


def join(pieces: Sequence[Piece]) -> tuple[np.ndarray, int]:
    """The chapter's samples and rate, in memory (tests, benchmarks). Its length is, to the sample, the
    sum of the resampled chunks' lengths and of their pauses."""
    if not pieces:
        raise ValueError("a chapter needs at least one chunk")
    rate = target_rate(pieces)
    same_rate = [Piece(resample(mono(p.samples), p.rate, rate), rate, p.pause_after_ms, p.role) for p in pieces]
    gains = role_gains(same_rate, rate)
    return np.concatenate(list(parts(same_rate, gains, rate))).astype(np.float32), rate
