"""Router overhead: the same speech requests straight to an inference pod (its pod IP) and through
the router, in one run, at several concurrency levels.

A TtsDeployment with one replica is created in the platform namespace of the local cluster, and a
router of the benchmark's own is started (the platform's router has a per-key rate limit; this one
has none, every other setting is the default). Each concurrency level runs closed-loop clients for
``--seconds`` against one path, then the other, ``--rounds`` times with the order alternating, so
both paths see the same machine. Every request streams audio (``response_format: pcm``) and reads
it to the end.

    .venv/bin/python bench/router_overhead.py                       # espeak, "Hi." (the router's own cost)
    .venv/bin/python bench/router_overhead.py --engine piper --text "A sentence of real speech."
    git worktree add /tmp/kube-tts-main main     # then, in the same rounds, the router of that revision too:
    .venv/bin/python bench/router_overhead.py --baseline /tmp/kube-tts-main --output router_overhead_espeak_ab

Reports, per level: requests per second on each path and their ratio, time to first byte and to the
last byte (p50/p99) on each path and what the router adds, and the router's CPU time per request.
Ratios and added latencies are the median over the rounds of each round's figure: the machine is
shared, and a burst of load from elsewhere then spoils one round rather than the result. The
router's CPU time per request does not depend on such load at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from common import (
    JSON,
    Cluster,
    RouterProcess,
    cpu_seconds,
    eventually,
    machine,
    median,
    pct,
    pids_with_env,
    pin,
    say,
    table,
    write_results,
)


@dataclass
class Window:
    """The requests of one path at one concurrency level, over every round."""

    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    bytes: int = 0
    errors: int = 0
    wall: float = 0.0
    router_cpu: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.total) / self.wall if self.wall else float("nan")


async def run_window(url: str, headers: dict[str, str], body: JSON, concurrency: int, seconds: float, into: Window):
    """Closed loop: ``concurrency`` clients send one request after another for ``seconds``."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def client(stop: float, record: bool) -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                first = 0.0
                size = 0
                try:
                    async with session.post(f"{url}/v1/audio/speech", json=body) as resp:
                        if resp.status != 200:
                            await resp.read()
                            into.errors += record
                            continue
                        async for chunk in resp.content.iter_any():
                            if not first:
                                first = time.perf_counter() - t0
                            size += len(chunk)
                except aiohttp.ClientError:
                    into.errors += record
                    continue
                if record:
                    into.ttfb.append(first)
                    into.total.append(time.perf_counter() - t0)
                    into.bytes += size

        # a short warm-up fills the connection pools; only the window after it counts
        warm = time.perf_counter() + min(1.0, seconds / 4)
        await asyncio.gather(*(client(warm, False) for _ in range(concurrency)))
        t0 = time.perf_counter()
        await asyncio.gather(*(client(t0 + seconds, True) for _ in range(concurrency)))
        into.wall += time.perf_counter() - t0


def measure(args: argparse.Namespace, cluster: Cluster) -> JSON:
    name = f"bench-router-{args.engine}"
    say(f"TtsDeployment {name}: {args.engine}, one replica")
    # the pod's own queue must hold every client of the direct path (the router holds its own queue)
    cluster.apply_model(
        name,
        args.engine,
        1,
        maxReplicas=1,
        env=[{"name": "KUBETTS_MAX_QUEUE", "value": "512"}],
    )
    router = RouterProcess(cluster)
    baseline = RouterProcess(cluster, source=args.baseline) if args.baseline else None
    try:
        eventually(lambda: cluster.ready_pods(name), 300, f"a ready pod of {name}")
        (pod,) = cluster.ready_pods(name)
        for r in (router, baseline) if baseline else (router,):
            eventually(lambda r=r: (r.model(name) or {}).get("ready"), 60, "the router to see the pod")
        direct_url = f"http://{pod['status']['podIP']}:8000"
        placement = "shared: the router, the pod and the clients on every CPU"
        if args.router_cpus:
            placement = separate_cores(args.router_cpus, router.pid, pids_with_env("KUBETTS_DEPLOYMENT", name))
            if baseline:
                pin(baseline.pid, args.router_cpus)
        body = {"model": name, "input": args.text, "response_format": "pcm"}
        say(f"pod {pod['metadata']['name']} at {direct_url}; router at {router.url}; text {args.text!r}")
        levels, base_levels = [], []
        for c in args.concurrency:
            rounds: list[tuple[Window, Window]] = []
            base_rounds: list[tuple[Window, Window]] = []
            for r in range(args.rounds):
                direct, routed, based = Window(), Window(), Window()
                order: list[tuple[Window, RouterProcess | None]] = [(direct, None), (routed, router)]
                if baseline:
                    order.append((based, baseline))
                shift = r % len(order)  # each path first in turn, so all of them see the same machine
                for win, proc in order[shift:] + order[:shift]:
                    url, headers = (direct_url, {}) if proc is None else (proc.url, proc.headers())
                    cpu0 = cpu_seconds(proc.pid) if proc else 0.0
                    asyncio.run(run_window(url, headers, body, c, args.seconds, win))
                    if proc is not None:
                        win.router_cpu += cpu_seconds(proc.pid) - cpu0
                rounds.append((direct, routed))
                base_rounds.append((direct, based))
            level = summarise(c, rounds)
            levels.append(level)
            say(
                f"c={c}: direct {level['direct']['rps']:.1f} req/s, router {level['router']['rps']:.1f} req/s "
                f"(x{level['throughput_ratio']:.2f}); p50 +{level['added_ms']['total_p50']:.1f} ms; "
                f"{level['router_cpu_ms_per_request']:.2f} ms CPU/req"
            )
            if baseline:
                base = summarise(c, base_rounds)
                base_levels.append(base)
                say(
                    f"c={c}: baseline {base['router']['rps']:.1f} req/s (x{base['throughput_ratio']:.2f}); "
                    f"p50 +{base['added_ms']['total_p50']:.1f} ms; {base['router_cpu_ms_per_request']:.2f} ms CPU/req"
                )
        return {
            "engine": args.engine,
            "text": args.text,
            "format": "pcm",
            "seconds_per_window": args.seconds,
            "rounds": args.rounds,
            "router_settings": "defaults (pod_concurrency 4) with the rate limit off",
            "pod_settings": "max_concurrency 2 (default), max_queue 512",
            "placement": placement,
            "levels": levels,
            **({"baseline": {"source": str(args.baseline), "levels": base_levels}} if baseline else {}),
        }
    finally:
        router.stop()
        if baseline:
            baseline.stop()
        if not args.keep:
            cluster.delete_model(name)


def router_cpus(value: str) -> set[int]:
    if value == "auto":
        return {max(os.sched_getaffinity(0))}
    return {int(c) for c in value.split(",")}


def separate_cores(router_cpus: set[int], router_pid: int, pod_pids: list[int]) -> str:
    """The router on ``router_cpus``; the pod and the load generator (this process) on the others,
    as in a cluster where the router has its own nodes. The control plane stays where it was (idle
    while the benchmark runs). The pod is deleted at the end; with ``--keep`` it stays pinned."""
    rest = os.sched_getaffinity(0) - router_cpus
    if not rest or not pod_pids:
        raise SystemExit(f"cannot separate: CPUs left {sorted(rest)}, pod processes {pod_pids}")
    pin(router_pid, router_cpus)
    for pid in [*pod_pids, os.getpid()]:
        pin(pid, rest)
    placement = f"router on CPUs {sorted(router_cpus)}; pod and clients on CPUs {sorted(rest)}"
    say(placement)
    return placement


def merged(windows: list[Window]) -> Window:
    out = Window()
    for w in windows:
        out.ttfb += w.ttfb
        out.total += w.total
        out.bytes += w.bytes
        out.errors += w.errors
        out.wall += w.wall
        out.router_cpu += w.router_cpu
    return out


def summarise(c: int, rounds: list[tuple[Window, Window]]) -> JSON:
    """Per path: all rounds' requests together. Ratio and added latency: the median over the rounds
    of each round's figure (a round's two windows ran back to back, so a burst of load from
    elsewhere on the machine spoils one round, not the result)."""

    def side(w: Window) -> JSON:
        return {
            "requests": len(w.total),
            "errors": w.errors,
            "rps": w.rps,
            "audio_bytes_per_s": w.bytes / w.wall if w.wall else float("nan"),
            "ttfb_ms": {"p50": pct(w.ttfb, 50) * 1000, "p99": pct(w.ttfb, 99) * 1000},
            "total_ms": {"p50": pct(w.total, 50) * 1000, "p99": pct(w.total, 99) * 1000},
        }

    direct, routed = merged([d for d, _ in rounds]), merged([r for _, r in rounds])
    per_round = [
        {
            "throughput_ratio": r.rps / d.rps,
            **{
                f"added_{what}_{q}_ms": (pct(getattr(r, what), q) - pct(getattr(d, what), q)) * 1000
                for what in ("ttfb", "total")
                for q in (50, 99)
            },
        }
        for d, r in rounds
    ]
    return {
        "concurrency": c,
        "direct": side(direct),
        "router": side(routed),
        "rounds": per_round,
        "throughput_ratio": median(x["throughput_ratio"] for x in per_round),
        "added_ms": {
            f"{what}_p{q}": median(x[f"added_{what}_{q}_ms"] for x in per_round)
            for what in ("ttfb", "total")
            for q in (50, 99)
        },
        "router_cpu_ms_per_request": routed.router_cpu / len(routed.total) * 1000 if routed.total else float("nan"),
    }


def print_table(result: JSON, levels: list[JSON] | None = None, which: str = "") -> None:
    rows = []
    for lv in result["levels"] if levels is None else levels:
        d, r, a = lv["direct"], lv["router"], lv["added_ms"]
        rows.append(
            [
                lv["concurrency"],
                f"{d['rps']:.1f}",
                f"{r['rps']:.1f}",
                f"{lv['throughput_ratio']:.2f}",
                f"{d['total_ms']['p50']:.1f} / {d['total_ms']['p99']:.1f}",
                f"{r['total_ms']['p50']:.1f} / {r['total_ms']['p99']:.1f}",
                f"{a['total_p50']:+.1f} / {a['total_p99']:+.1f}",
                f"{a['ttfb_p50']:+.1f} / {a['ttfb_p99']:+.1f}",
                f"{lv['router_cpu_ms_per_request']:.2f}",
                d["errors"] + r["errors"],
            ]
        )
    print(
        f"\nRouter overhead{which} — {result['engine']}, input {result['text']!r}, streamed {result['format']}, "
        f"{result['rounds']} × {result['seconds_per_window']:g} s per path and level; {result['placement']}\n"
    )
    print(
        table(
            [
                "clients",
                "direct req/s",
                "router req/s",
                "ratio (median of rounds)",
                "direct ms p50/p99",
                "router ms p50/p99",
                "added ms p50/p99 (median of rounds)",
                "added TTFB ms p50/p99",
                "router CPU ms/req",
                "errors",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="espeak", choices=["espeak", "piper"])
    parser.add_argument("--text", default="Hi.", help="the input of every request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per path, level and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/router rounds per level")
    parser.add_argument("--keep", action="store_true", help="leave the TtsDeployment in place afterwards")
    parser.add_argument(
        "--router-cpus",
        type=router_cpus,
        default=set(),
        help="pin the router to these CPUs (e.g. 1, or 'auto' for the last one) and the pod and the clients "
        "to the others: the router on cores of its own, as on its own nodes (default: all share every CPU)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout of another revision (e.g. a git worktree of main): its router is measured too, in the "
        "same rounds, against the same direct windows",
    )
    parser.add_argument("--output", default="", help="results name (default router_overhead_<engine>)")
    args = parser.parse_args()
    say(f"{os.cpu_count()} CPUs, load average {machine()['load_average']}")
    cluster = Cluster.up()
    result = measure(args, cluster)
    print_table(result)
    if "baseline" in result:
        print_table(result, result["baseline"]["levels"], f" (baseline: {result['baseline']['source']})")
    write_results(args.output or f"router_overhead_{args.engine}", result)


if __name__ == "__main__":
    main()
