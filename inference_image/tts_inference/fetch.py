"""``python -m tts_inference.fetch``: download a Hugging Face model snapshot into a directory.

Runs as the ``fetch-model`` init container for ``hf://org/repo[@revision]`` model sources. It asks
the Hub API for the revision's commit and file list, downloads each file to a temporary name and
renames it into place, and writes a marker with the commit so a restarted pod (same emptyDir)
skips the work. ``HF_TOKEN`` authenticates; ``HF_ENDPOINT`` points at a mirror.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import httpx

log = logging.getLogger("tts_inference.fetch")
MARKER = ".kubetts-snapshot.json"


class FetchError(Exception):
    pass


@dataclass(frozen=True)
class Snapshot:
    commit: str
    files: list[str]


def safe_relative(name: str) -> PurePosixPath:
    """A repository file name as a relative path that cannot escape the destination."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise FetchError(f"refusing unsafe file name from the hub: {name!r}")
    return path


def parse_listing(body: dict) -> Snapshot:
    try:
        commit = str(body["sha"])
        files = [str(s["rfilename"]) for s in body.get("siblings", [])]
    except (KeyError, TypeError) as exc:
        raise FetchError(f"unexpected answer from the hub: {exc}") from exc
    for name in files:
        safe_relative(name)
    return Snapshot(commit, sorted(files))


def _check(resp: httpx.Response, what: str) -> None:
    if resp.status_code in (401, 403):
        raise FetchError(f"{what}: access denied ({resp.status_code}); set HF_TOKEN via model.secretRef")
    if resp.status_code == 404:
        raise FetchError(f"{what}: not found (check the repository and revision)")
    if resp.status_code >= 400:
        raise FetchError(f"{what}: HTTP {resp.status_code}")


def fetch(repo: str, revision: str, dest: Path, endpoint: str, token: str | None, client: httpx.Client) -> Snapshot:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{endpoint.rstrip('/')}/api/models/{repo}/revision/{quote(revision, safe='')}"
    resp = client.get(url, headers=headers)
    _check(resp, f"hf://{repo}@{revision}")
    snap = parse_listing(resp.json())
    marker = dest / MARKER
    if marker.exists() and json.loads(marker.read_text()).get("commit") == snap.commit:
        log.info("hf://%s@%s (%s) is already here", repo, revision, snap.commit[:12])
        return snap
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    total = 0
    for i, name in enumerate(snap.files, 1):
        rel = safe_relative(name)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        file_url = f"{endpoint.rstrip('/')}/{repo}/resolve/{snap.commit}/{quote(name)}"
        with client.stream("GET", file_url, headers=headers, follow_redirects=True) as stream:
            _check(stream, name)
            with open(part, "wb") as fh:
                for chunk in stream.iter_bytes(1 << 20):
                    fh.write(chunk)
        os.replace(part, target)
        size = target.stat().st_size
        total += size
        log.info("fetched %d/%d %s (%.1f MB)", i, len(snap.files), name, size / 1e6)
    marker.write_text(json.dumps({"repo": repo, "revision": revision, "commit": snap.commit}))
    log.info(
        "hf://%s@%s: %d files, %.1f MB in %.1fs", repo, revision, len(snap.files), total / 1e6, time.monotonic() - t0
    )
    return snap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", required=True, help="org/name")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--endpoint", default=os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with httpx.Client(timeout=httpx.Timeout(60, connect=10)) as client:
            fetch(args.repo, args.revision, args.dest, args.endpoint, os.environ.get("HF_TOKEN") or None, client)
    except (FetchError, httpx.HTTPError, OSError) as exc:
        log.error("cannot fetch hf://%s@%s: %s", args.repo, args.revision, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
