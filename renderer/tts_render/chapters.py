"""Chapters on the claim: which are joined, joining one, and its sidecar.

A chapter's sidecar records ``source``, the sha256 of its chunk keys in order: a chapter whose sidecar
has the plan's source (and whose file matches it) is not joined again, and a plan whose text or
voices changed gets new keys, so a new source, so a new join."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

# chapter_source is tts_crds.plan's: the operator counts joined chapters by the same rule
from tts_crds.plan import PlanChapter, chapter_source

from .encode import file_rate, writer
from .files import atomic_path, chunk_paths, file_sha256, matches, read_json, write_atomic
from .join import Piece, mono, parts, resample, role_gains


def sidecar_path(root: Path, chapter: PlanChapter) -> Path:
    return root / "chapters" / f"{chapter.number:03d}.json"


def is_joined(root: Path, chapter: PlanChapter) -> bool:
    """Whether the chapter's file is on the volume for this plan: sidecar source and file size match.
    (Size, not sha256: this is asked on every poll, and a file is renamed into place whole.)"""
    sidecar = read_json(sidecar_path(root, chapter))
    if sidecar is None or sidecar.get("source") != chapter_source(chapter) or sidecar.get("file") != chapter.file:
        return False
    return matches(sidecar, root / chapter.file, check_sha=False)


def chapter_sidecar(chapter: PlanChapter, fmt: str, path: Path, seconds: float) -> dict[str, Any]:
    """``{number, title, file, durationSeconds, sha256, bytes, format, source}`` of the file at ``path``."""
    return {
        "number": chapter.number,
        "title": chapter.title,
        "file": chapter.file,
        "durationSeconds": round(seconds, 3),
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "format": fmt,
        "source": chapter_source(chapter),
    }


def read_pieces(root: Path, chapter: PlanChapter, rate: int) -> Iterator[Piece]:
    """The chapter's chunks one at a time, mono at ``rate``."""
    for chunk in chapter.chunks:
        samples, got = sf.read(chunk_paths(root, chunk)[0], dtype="float32", always_2d=False)
        yield Piece(resample(mono(np.asarray(samples)), int(got), rate), rate, chunk.pause_after_ms, chunk.role)


def join_chapter(root: Path, chapter: PlanChapter, fmt: str) -> dict[str, Any]:
    """Join the chapter's (done) chunks into its file, then write its sidecar; returns the sidecar.

    Two passes over the chunk files (measure each role's loudness, then write), one chunk in memory at
    a time: a chapter of hours joins in the memory of one chunk plus the encoder's. Two pods may join
    the same chapter at once (one finishing its shard, index 0 polling): each writes whole files under
    their own temporary names, the same inputs give the same bytes, and the last rename wins."""
    if not chapter.chunks:
        raise ValueError("a chapter needs at least one chunk")
    rate = file_rate(max(sf.info(str(chunk_paths(root, c)[0])).samplerate for c in chapter.chunks), fmt)
    gains = role_gains(read_pieces(root, chapter, rate), rate)
    frames = 0
    final = root / chapter.file
    with atomic_path(final) as tmp:
        with writer(tmp, rate, fmt) as out:
            for part in parts(read_pieces(root, chapter, rate), gains, rate):
                out.write(part)
                frames += len(part)
        sidecar = chapter_sidecar(chapter, fmt, tmp, frames / rate)
    write_atomic(sidecar_path(root, chapter), json.dumps(sidecar, separators=(",", ":")).encode())
    return sidecar
