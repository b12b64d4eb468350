"""The figures of docs/benchmarks.md, drawn from bench/results/*.json into docs/images/.

    .venv/bin/python bench/plots.py

- ``bench-router-overhead.png``: throughput ratio (router ÷ direct) and added p50 latency against
  the number of clients, per engine (everything sharing every core, and the router pinned to a
  core of its own), with the targets; the httpx relay of the same-session A/B run
  (``router_overhead_ab_*.json``) dashed where it is there.
- ``bench-scale-from-zero.png``: the median way from a request at zero to the first audio byte,
  phase by phase, per engine.
- ``bench-inference.png``: audio seconds per second and time to first audio against the number
  of clients, per engine (straight to the inference server, no cluster).
- ``bench-operator-scale.png``: how many of N TtsDeployments had converged (children and status)
  against the time since they were created, per N, with the 60 s target.

A result that is missing is skipped with a note; nothing is measured here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
IMAGES = ROOT / "docs" / "images"
DPI = 80
JSON = dict[str, Any]


def load(name: str) -> JSON | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        print(f"# {path.relative_to(ROOT)} missing: skipped", file=sys.stderr)
        return None
    data: JSON = json.loads(path.read_text())
    return data


def save(fig: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    print(f"# {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)


def router_overhead() -> None:
    series = []
    for engine, colour in (("piper", "tab:blue"), ("espeak", "tab:orange")):
        data = load(f"router_overhead_{engine}")
        if data:
            series.append((f"{engine}, shared cores", data, colour, "-"))
        data = load(f"router_overhead_{engine}_own_core")
        if data:
            series.append((f"{engine}, router on its own core", data, colour, "-."))
    ab = load("router_overhead_ab_2_httpx")
    if ab:
        series.append((f"{ab['engine']} (httpx relay, A/B run)", ab, "tab:gray", "--"))
    if not series:
        return
    fig, (ratio, added) = plt.subplots(1, 2, figsize=(11, 3.8))
    fig.subplots_adjust(wspace=0.3)
    for label, data, colour, style in series:
        c = [lv["concurrency"] for lv in data["levels"]]
        ratio.plot(c, [lv["throughput_ratio"] for lv in data["levels"]], style, marker="o", color=colour, label=label)
        added.plot(c, [lv["added_ms"]["total_p50"] for lv in data["levels"]], style, marker="o", color=colour)
    ratio.axhline(0.8, color="green", linestyle=":", label="target ≥ 0.8×")
    top = max(lv["throughput_ratio"] for _, data, _, _ in series for lv in data["levels"])
    ratio.set(xscale="log", xlabel="concurrent clients", ylabel="router ÷ direct req/s", ylim=(0, max(1.1, top + 0.1)))
    ratio.set_title("Throughput through the router")
    added.axhline(2.0, color="green", linestyle=":", label="target ≤ 2 ms")
    added.set(xscale="log", xlabel="concurrent clients", ylabel="ms added (symlog; < 0: router path faster)")
    added.set_yscale("symlog", linthresh=1)
    added.set_title("Latency added at p50 (to the last byte)")
    for ax in (ratio, added):
        ax.set_xticks([1, 8, 32, 64], labels=["1", "8", "32", "64"])
        ax.grid(alpha=0.3)
    ratio.legend(fontsize=8, loc="lower left")
    added.legend(fontsize=8, loc="upper left")
    save(fig, "bench-router-overhead.png")


# the phases of scale_from_zero.py, in order, and how the figure names them
PHASES = [
    ("patch", "scale patch"),
    ("pod_created", "pod created"),
    ("scheduled", "scheduled"),
    ("started", "container started"),
    ("imports", "process up (imports)"),
    ("model_load", "model load"),
    ("router_sees", "router sees ready (its probe)"),
    ("first_byte", "first byte"),
]


def scale_from_zero() -> None:
    data = load("scale_from_zero")
    if not data:
        return
    engines = data["engines"]
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.8 * len(engines)))
    colours = plt.get_cmap("tab10").colors
    names = [e["engine"] + (f", {e['variant']}" if e.get("variant") else "") for e in engines]
    labels = [f"{name} ({len(e['runs'])} runs)" for name, e in zip(names, engines, strict=True)]
    left = [0.0] * len(engines)
    for i, (key, name) in enumerate(PHASES):
        # a phase measured on two clocks can come out a few ms below zero: drawn as nothing
        widths = [max(0.0, e["median_phases"].get(key, 0.0)) for e in engines]
        ax.barh(labels, widths, left=left, color=colours[i % len(colours)], label=name, height=0.5)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, e in enumerate(engines):
        ax.text(left[y] + 0.05, y, f"{e['median_total']:.2f} s (control plane {e['median_control_plane']:.2f} s)")
    ax.set(xlabel="seconds from the request (median of each phase)", xlim=(0, max(left) * 1.45))
    ax.set_title("Scale from zero: request → first audio byte")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    ax.grid(axis="x", alpha=0.3)
    save(fig, "bench-scale-from-zero.png")


def operator_scale() -> None:
    data = load("operator_scale")
    if not data:
        return
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for size in data["sizes"]:
        offsets = sorted(size["converged_offsets_s"])
        ax.step(offsets, range(1, len(offsets) + 1), where="post", label=f"{size['objects']} TtsDeployments")
    ax.axvline(60, color="green", linestyle=":", label="target: 500 within 60 s")
    ax.set(xlabel="seconds since the first create call", ylabel="converged (children + status)")
    ax.set_title("Operator at scale")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "bench-operator-scale.png")


def inference() -> None:
    data = load("inference")
    if not data:
        return
    engines = sorted({lv["engine"] for lv in data["levels"]})
    fig, (rate, first) = plt.subplots(1, 2, figsize=(11, 3.8))
    fig.subplots_adjust(wspace=0.3)
    for engine in engines:
        levels = [lv for lv in data["levels"] if lv["engine"] == engine]
        c = [lv["concurrency"] for lv in levels]
        rate.plot(c, [lv["throughput"] for lv in levels], marker="o", label=engine)
        first.plot(c, [lv["ttfa_p50"] * 1000 for lv in levels], marker="o", label=engine)
    rate.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="seconds of audio per second")
    rate.set_title(f"Throughput (server runs {data['server_concurrency']} at a time)")
    first.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms to the first audio byte (p50)")
    first.set_title("Time to first audio")
    for ax in (rate, first):
        ticks = sorted({lv["concurrency"] for lv in data["levels"]})
        ax.set_xticks(ticks, labels=[str(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, "bench-inference.png")


def main() -> None:
    router_overhead()
    scale_from_zero()
    operator_scale()
    inference()


if __name__ == "__main__":
    main()
