"""A flame summary of a py-spy profile: which frames the samples were in, by share.

``py-spy record --format raw`` writes one line per distinct stack (``frame;frame;… count``, the
outermost frame first). This prints, as markdown, the frames with the largest *inclusive* share
(the samples whose stack holds the frame: it and what it calls) and the largest *self* share (the
samples taken in the frame itself), and the share of each library (by the file of each stack's
innermost frame). Only on-CPU samples are in py-spy's file unless it ran with ``--idle``; but time
in C code under a Python frame counts as that frame's own, and py-spy cannot tell uvloop's wait for
events from its work: ``--drop-self 'Runner.run'`` leaves out the samples taken there (the event
loop's own C code, waiting included) and gives the shares of the rest.

    py-spy record --pid <router pid> --rate 200 --duration 10 --format raw --output router.txt
    .venv/bin/python bench/flame_summary.py router.txt --top 15
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# "function (path/to/file.py:line)"; the line is dropped so that one function is one frame
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def stacks(text: str) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out[tuple(frame(f) for f in stack.split(";"))] += int(count)
    return out


def frame(raw: str) -> str:
    m = _FRAME.match(raw.strip())
    return f"{m['func']} ({m['file']})" if m else raw.strip()


def library(frame_name: str) -> str:
    """The package a frame's file belongs to: ``aiohttp``, ``tts_api``, ``asyncio``, …"""
    m = re.search(r"\(([^()]*)\)$", frame_name)
    path = m.group(1) if m else ""
    first = path.split("/", 1)[0]
    return first.removesuffix(".py") or "?"


def summary(counts: Counter[tuple[str, ...]], top: int, drop_self: str = "") -> str:
    dropped = sum(n for stack, n in counts.items() if drop_self and stack[-1].startswith(drop_self))
    counts = Counter({s: n for s, n in counts.items() if not (drop_self and s[-1].startswith(drop_self))})
    total = sum(counts.values())
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    libs: Counter[str] = Counter()
    for stack, n in counts.items():
        for f in set(stack):
            inclusive[f] += n
        own[stack[-1]] += n
        libs[library(stack[-1])] += n

    def rows(counter: Counter[str], limit: int) -> list[str]:
        return [f"| {100 * n / total:.1f} % | `{name}` |" for name, n in counter.most_common(limit)]

    # the outermost frames (the event loop, uvicorn's cycle) hold every sample: skip those at ≥ 99 %
    deep = Counter({f: n for f, n in inclusive.items() if n < 0.99 * total})
    parts = [
        f"{total} samples" + (f" ({dropped} more in `{drop_self}` itself, left out)" if drop_self else ""),
        "",
        "| inclusive | frame |",
        "|---:|---|",
        *rows(deep, top),
        "",
        "| self | frame |",
        "|---:|---|",
        *rows(own, top),
        "",
        "| self | library |",
        "|---:|---|",
        *rows(libs, top),
    ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path, help="a py-spy --format raw file")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--drop-self", default="", help="leave out the samples taken in this frame itself")
    args = parser.parse_args()
    print(summary(stacks(args.profile.read_text()), args.top, args.drop_self))


if __name__ == "__main__":
    main()
