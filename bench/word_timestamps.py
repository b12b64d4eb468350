"""Benchmark word timestamps: kube-tts's word start times against Whisper's, on the same audio.

The inference server (real uvicorn, in-process, one per engine) speaks the fixed English sentences
two at a time (so every second sentence starts after another's audio, as the server's sentence
chunking places it) with ``"timestamps": "word"`` over SSE, as WAV; Whisper base (faster-whisper,
``word_timestamps=True``, int8 on the CPU) transcribes the returned audio; the words are aligned on
their normalised text and the absolute start error of each is taken. Rounds alternate the engines.
Prints the median and p90 per engine and speed, and writes ``bench/results/word_timestamps.json``
(docs/benchmarks.md, "Word timestamps", quotes it).

    .venv/bin/python bench/word_timestamps.py
    .venv/bin/python bench/word_timestamps.py --rounds 3 --speeds 1.0 1.5
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import statistics
import sys
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from common import MODELS, pct, say, write_results
from tts_inference.app import create_app
from tts_inference.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests.helpers import LiveServer, eventually, sse_events
from tests.listen import SENTENCES, listener, model_dir, start_errors

ENGINES = ("piper", "espeak", "kokoro")


def model_uri(engine: str) -> str:
    """kokoro: the Kokoro-82M int8 export the tests assemble from its PyPI parts (Japanese voices only)."""
    return f"file://{model_dir('kokoro-82m-int8')}" if engine == "kokoro" else MODELS[engine]


def spoken(client: httpx.Client, text: str, speed: float) -> tuple[bytes, list[tuple[str, float]]]:
    """The WAV the server returned and its words (from ``speech.audio.done``)."""
    body = {"model": "m", "input": text, "response_format": "wav", "stream_format": "sse", "timestamps": "word"}
    resp = client.post("/v1/audio/speech", json={**body, "speed": speed})
    resp.raise_for_status()
    events = sse_events(resp.content)
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    done = events[-1]
    assert done["type"] == "speech.audio.done", done
    return audio, [(w["word"], w["start"]) for w in done["words"]]


def texts() -> list[str]:
    return [" ".join(SENTENCES[i : i + 2]) for i in range(0, len(SENTENCES), 2)]


def onsets(wav: bytes, min_silence: float = 0.1) -> list[float]:
    """Seconds where sound begins after at least ``min_silence`` of silence (and at the start):
    word starts no listener can place elsewhere, a second yardstick beside Whisper's."""
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    frame = rate // 100
    n = len(samples) // frame
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = rms > 0.06 * float(rms.max() or 1.0)
    out, quiet = [], int(min_silence * 100)  # the start counts as silence
    for i, is_loud in enumerate(loud):
        if is_loud and quiet >= min_silence * 100:
            out.append(i / 100)
        quiet = 0 if is_loud else quiet + 1
    return out


def onset_errors(starts: list[float], wav: bytes, window: float = 0.25) -> list[float]:
    """For each onset, the distance to the nearest start within ``window`` seconds."""
    out = []
    for t in onsets(wav):
        near = [abs(s - t) for s in starts if abs(s - t) <= window]
        if near:
            out.append(min(near))
    return out


def summary(errors: list[float]) -> dict:
    ms = [e * 1000 for e in errors]
    return {
        "words": len(ms),
        "median_ms": round(statistics.median(ms), 1) if ms else None,
        "p90_ms": round(pct(ms, 90), 1) if ms else None,
    }


def measure(clients: dict[str, httpx.Client], rounds: int, speeds: list[float]) -> dict[tuple[str, float], dict]:
    """Per engine and speed: start errors against Whisper, and ours and Whisper's against the onsets."""
    hear = listener()
    keys = ("whisper", "onset_ours", "onset_whisper")
    errors = {(e, s): {k: [] for k in keys} for e in clients for s in speeds}
    engines = list(clients)
    for r in range(rounds):
        for text in texts():
            for speed in speeds:
                for engine in engines if r % 2 == 0 else engines[::-1]:
                    wav, ours = spoken(clients[engine], text, speed)
                    heard = hear.words(wav)
                    got = errors[engine, speed]
                    got["whisper"] += start_errors(ours, heard)
                    got["onset_ours"] += onset_errors([s for _, s in ours], wav)
                    got["onset_whisper"] += onset_errors([s for _, s in heard], wav)
        say(f"round {r + 1} of {rounds} done")
    return {key: {k: summary(v) for k, v in got.items()} for key, got in errors.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the sentences, engines alternating")
    parser.add_argument("--speeds", type=float, nargs="+", default=[1.0, 1.5])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--output", default="word_timestamps")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        clients = {}
        for engine in args.engines:
            server = stack.enter_context(LiveServer(create_app(Settings(engine=engine, model_uri=model_uri(engine)))))
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=120))
            eventually(lambda c=client: c.get("/readyz").status_code == 200, 120, what=f"{engine} to load")
            clients[engine] = client
        measured = measure(clients, args.rounds, args.speeds)
    results = []
    for (engine, speed), got in measured.items():
        results.append({"engine": engine, "speed": speed, **got})
        w, o = got["whisper"], got["onset_ours"]
        say(
            f"{engine} at speed {speed}: against Whisper {w['words']} words, median {w['median_ms']} ms, "
            f"p90 {w['p90_ms']} ms; against onsets after silence: ours {o['median_ms']} ms, "
            f"Whisper's {got['onset_whisper']['median_ms']} ms"
        )
    write_results(
        args.output,
        {
            "reference": "faster-whisper base, int8, CPU, beam 5, word_timestamps=True",
            "onsets": "sound after at least 100 ms of silence (10 ms frames, 6% of the loudest frame's RMS)",
            "sentences": len(SENTENCES),
            "requests_per_round": len(texts()),
            "rounds": args.rounds,
            "target_median_ms": 80,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
