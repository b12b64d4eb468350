"""How long the TtsJob renderer takes to join and encode a chapter (ADR 0050), by chapter length.

Pure CPU, no servers: a chapter of speech-like chunks (2 to 6 s each, two roles at different levels,
one at 22.05 kHz and one at 24 kHz so every chunk of the first is resampled) goes through
``tts_render.join.join`` and then ``encode`` in each format. Medians over the rounds go into a table
and ``bench/results/renderer_join.json``.

    .venv/bin/python bench/renderer_join.py                     # 5 and 20 minute chapters, 3 rounds (about 4 min)
    .venv/bin/python bench/renderer_join.py --minutes 10 --rounds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import median, say, table, write_results
from tts_render.encode import encode
from tts_render.join import Piece, join

FORMATS = ["wav", "flac", "mp3", "opus"]


def chapter(minutes: float, seed: int = 0) -> list[Piece]:
    """Chunks adding up to ``minutes`` of audio: a voiced buzz with a syllable envelope and some noise."""
    rng = np.random.default_rng(seed)
    pieces: list[Piece] = []
    total = 0.0
    while total < minutes * 60:
        role, rate, level = ("Alice", 22050, 0.1) if len(pieces) % 2 == 0 else ("Bob", 24000, 0.4)
        seconds = float(rng.uniform(2, 6))
        t = np.arange(int(seconds * rate)) / rate
        voice = np.sign(np.sin(2 * np.pi * 120 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
        samples = (level * (0.8 * voice + 0.2 * rng.standard_normal(len(t)))).astype(np.float32)
        pieces.append(Piece(samples, rate, 350, role))
        total += seconds + 0.35
    return pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 20])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows, results = [], []
    for minutes in args.minutes:
        pieces = chapter(minutes)
        joins, encodes = [], {f: [] for f in FORMATS}
        for _ in range(args.rounds):
            started = time.perf_counter()
            samples, rate = join(pieces)
            joins.append(time.perf_counter() - started)
            for fmt in FORMATS:
                started = time.perf_counter()
                encode(samples, rate, fmt)
                encodes[fmt].append(time.perf_counter() - started)
        result = {
            "minutes": minutes,
            "chunks": len(pieces),
            "join_s": median(joins),
            **{f"encode_{fmt}_s": median(encodes[fmt]) for fmt in FORMATS},
        }
        results.append(result)
        rows.append([minutes, len(pieces), *(f"{result[k]:.2f}" for k in list(result)[2:])])
        say(f"{minutes} min: join {result['join_s']:.2f} s")
    print(table(["minutes", "chunks", "join s", *(f"{fmt} s" for fmt in FORMATS)], rows))
    write_results("renderer_join", {"rounds": args.rounds, "results": results})


if __name__ == "__main__":
    main()
