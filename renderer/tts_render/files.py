"""The job's files on the claim (ADR 0050, "Files on the claim"): chunk audio and sidecars, written so a
reader never sees half a file, and the test of whether a chunk is done.

Every file is written to a temporary name in its own directory, fsynced and renamed (then the
directory fsynced), audio before its sidecar: a sidecar on the volume means its audio is whole. A pod
killed mid-write leaves only a temporary name, which nothing reads."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import soundfile as sf
from tts_crds.plan import PlanChunk
from tts_crds.wav import with_true_sizes


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write (with open()/soundfile); when the block ends without an
    error, the file is fsynced and renamed to ``path`` (then the directory fsynced). On an error the
    temporary file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` at ``path``, all or nothing: a temporary name, fsync, rename, fsync of the directory."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, Any] | None:
    """A sidecar, or None when it is missing or not a JSON object (a sidecar is written whole or not at all,
    but an operator may have edited one)."""
    try:
        body = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def matches(sidecar: dict[str, Any] | None, path: Path, *, check_sha: bool = True) -> bool:
    """Whether ``path`` is the file ``sidecar`` describes: its size, and its sha256 unless told not to."""
    if sidecar is None:
        return False
    try:
        if path.stat().st_size != sidecar.get("bytes"):
            return False
    except OSError:
        return False
    return not check_sha or file_sha256(path) == sidecar.get("sha256")


def chunk_paths(root: Path, chunk: PlanChunk) -> tuple[Path, Path]:
    """(audio, sidecar) of a chunk: ``chunks/001/00001.wav`` and ``.json``."""
    stem = root / chunk.stem
    return stem.with_suffix(".wav"), stem.with_suffix(".json")


def chunk_sidecar(chunk: PlanChunk, wav: bytes) -> dict[str, Any]:
    """What a chunk's json says of its wav: ``{key, sha256, bytes, sampleRate, samples, seconds}``."""
    info = sf.info(io.BytesIO(wav))
    return {
        "key": chunk.key,
        "sha256": sha256(wav),
        "bytes": len(wav),
        "sampleRate": info.samplerate,
        "samples": info.frames,
        "seconds": round(info.frames / info.samplerate, 6),
    }


def write_chunk(root: Path, chunk: PlanChunk, wav: bytes) -> dict[str, Any]:
    """The chunk's wav, then its sidecar; returns the sidecar. A streamed WAV's unknown sizes are made
    true first, so the file on the volume is an ordinary WAV."""
    wav = with_true_sizes(wav)
    sidecar = chunk_sidecar(chunk, wav)
    audio, meta = chunk_paths(root, chunk)
    write_atomic(audio, wav)
    write_atomic(meta, json.dumps(sidecar, separators=(",", ":")).encode())
    return sidecar


def is_done(root: Path, chunk: PlanChunk) -> bool:
    """A chunk is done when its sidecar's key is the plan chunk's and its wav has the size and sha256 the
    sidecar gives: such a chunk is never requested again."""
    audio, meta = chunk_paths(root, chunk)
    sidecar = read_json(meta)
    return sidecar is not None and sidecar.get("key") == chunk.key and matches(sidecar, audio)
