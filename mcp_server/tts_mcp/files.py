"""Files the MCP server touches: speech it saves under the output directory, and reference clips
it reads for ``create_voice(audio_path=...)`` — only inside the configured audio directories.

An agent chooses ``audio_path``, so a path is untrusted: it must be absolute, resolve (symlinks
followed) to a regular file inside one of the allowed directories, and be small enough. Nothing
else on the machine can be read through this server.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")
EXTENSIONS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav", "pcm": "pcm"}


class FileRefused(Exception):
    """A path or an upload the server will not use; the message says why and what to do."""


def read_clip(path: str, allowed: Sequence[Path], max_bytes: int) -> tuple[bytes, str]:
    """The bytes and file name of a reference clip at ``path``, which must lie inside ``allowed``."""
    if not allowed:
        raise FileRefused(
            "audio_path is disabled on this server (no KUBETTS_MCP_AUDIO_DIRS configured): "
            "send the clip as audio_base64 instead"
        )
    dirs = ", ".join(str(d) for d in allowed)
    requested = Path(path)
    if not requested.is_absolute():
        raise FileRefused(f"audio_path must be an absolute path inside one of: {dirs}")
    try:
        resolved = requested.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise FileRefused(f"audio_path {path!r} does not exist (allowed directories: {dirs})") from exc
    roots = [_resolved_dir(d) for d in allowed]
    if not any(root is not None and resolved.is_relative_to(root) for root in roots):
        raise FileRefused(f"audio_path {path!r} is outside the allowed directories: {dirs}")
    if not resolved.is_file():
        raise FileRefused(f"audio_path {path!r} is not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(resolved, flags)
    except OSError as exc:
        raise FileRefused(f"audio_path {path!r} cannot be read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefused(f"audio_path {path!r} is larger than {max_bytes} bytes; send a clip of at most 30 s")
    if not data:
        raise FileRefused(f"audio_path {path!r} is empty")
    return data, resolved.name


def _resolved_dir(path: Path) -> Path | None:
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return resolved if resolved.is_dir() else None


def decode_clip(audio_base64: str, max_bytes: int) -> bytes:
    """A base64 clip (a ``data:`` URL prefix is tolerated), at most ``max_bytes`` once decoded."""
    text = audio_base64.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) > (max_bytes + 2) // 3 * 4 + 4:
        raise FileRefused(f"audio_base64 decodes to more than {max_bytes} bytes; send a clip of at most 30 s")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FileRefused("audio_base64 is not valid base64") from exc
    if not data:
        raise FileRefused("audio_base64 is empty")
    if len(data) > max_bytes:
        raise FileRefused(f"audio_base64 decodes to more than {max_bytes} bytes; send a clip of at most 30 s")
    return data


def speech_filename(model: str, voice: str, fmt: str, now: dt.datetime | None = None) -> str:
    """``20260101-120000-joe-default-1a2b3c.wav``: sortable, unique, and safe as one path component."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    parts = [_UNSAFE.sub("-", p).strip("-")[:40] or "x" for p in (model, voice)]
    return f"{stamp}-{parts[0]}-{parts[1]}-{secrets.token_hex(3)}.{EXTENSIONS.get(fmt, 'bin')}"


def save_speech(directory: Path, name: str, data: bytes) -> Path:
    """Write a new file (never overwriting one) readable by this user only; returns its absolute path."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory.resolve() / name
    if path.parent != directory.resolve():
        raise FileRefused(f"refusing to write outside {directory}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path
