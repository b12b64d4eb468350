"""A TtsJob's files on the jobs volume, as the operator counts them for its status (ADR 0050).

Reads only the small json sidecars (and the sizes of the files they describe): a chunk counts once its
sidecar's ``key`` is the plan chunk's and its wav has the recorded size; a chapter once its sidecar's
``source`` is the plan chapter's (:func:`tts_crds.plan.chapter_source`) and its file has the recorded
size. The renderer checks sha256 before it skips a chunk; hashing every file on each poll here would
cost far more than a progress count is worth.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tts_crds.jobs import ChapterStatus
from tts_crds.plan import Plan, chapter_source

from .jobs import Files


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """A sidecar, or None when it is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _has_size(path: Path, size: Any) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def job_dir(root: Path, plan_dir: str) -> Path:
    """The job's directory under the claim's root; ValueError if ``plan_dir`` would leave it (the CRD's
    pattern forbids that already: this is the second lock on a door that deletes files)."""
    path = (root / plan_dir).resolve()
    if path == root.resolve() or root.resolve() not in path.parents:
        raise ValueError(f"job directory {plan_dir!r} is not inside {root}")
    return path


def scan(root: Path, plan: Plan, counted: dict[str, float] | None = None) -> Files:
    """Chunks and chapters of ``plan`` that are done under ``root`` (the claim's root).

    ``counted`` (chunk key → seconds), kept by the caller across polls, holds the chunks found done
    before: a done chunk is never rewritten, so each poll reads only the sidecars of the chunks still
    to come (a book's thousands of sidecars are not re-read every few seconds)."""
    base = job_dir(root, plan.dir)
    counted = {} if counted is None else counted
    chunks_done = characters = 0
    seconds = 0.0
    chapters: list[ChapterStatus] = []
    for chapter in plan.chapters:
        for chunk in chapter.chunks:
            if chunk.key not in counted:
                sidecar = read_sidecar(base / f"{chunk.stem}.json")
                wav = base / f"{chunk.stem}.wav"
                if not (sidecar and sidecar.get("key") == chunk.key and _has_size(wav, sidecar.get("bytes"))):
                    continue
                counted[chunk.key] = float(sidecar.get("seconds") or 0.0)
            chunks_done += 1
            characters += chunk.characters
            seconds += counted[chunk.key]
        joined = read_sidecar(base / "chapters" / f"{chapter.number:03d}.json")
        if (
            joined
            and joined.get("source") == chapter_source(chapter)
            and _has_size(base / chapter.file, joined.get("bytes"))
        ):
            chapters.append(
                ChapterStatus(
                    number=chapter.number,
                    title=chapter.title,
                    file=f"{plan.dir}/{chapter.file}",
                    duration_seconds=joined.get("durationSeconds"),
                    sha256=str(joined.get("sha256") or ""),
                    bytes=joined.get("bytes"),
                )
            )
    return Files(chunks_done, characters, seconds, chapters)


def scan_mounted(root: Path, plan: Plan, counted: dict[str, float] | None = None) -> Files | None:
    """:func:`scan`, or None when the jobs volume is not mounted at ``root`` (progress from the Job alone)."""
    return scan(root, plan, counted) if root.is_dir() else None


def remove_job_dir(root: Path, plan_dir: str) -> bool:
    """Delete a job's files (a TtsJob with ``retain: false`` was deleted); False when there were none
    (or the jobs volume is not mounted here, which the operator logs)."""
    if not root.is_dir():
        return False
    path = job_dir(root, plan_dir)
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True
