"""How many pieces a pod's speech answer reaches its reader in: the wake-ups it costs the router.

The router relays a pod's answer as it arrives (ADR 0053): each read that finds bytes wakes its event
loop, and each one it passes on is a write to the client. This sends speech requests to an inference
server (``python -m tts_inference`` on a loopback port, as a pod runs it) over a raw socket and
counts, per answer, the reads that returned bytes until the end of the chunked body, and how many of
them came 1 ms or more after the one before (separate wake-ups even for a reader slower than this
one). With ``--baseline DIR`` a second server runs the inference code of another checkout
(``DIR/inference_image``, e.g. ``git archive main inference_image | tar -x -C DIR``) beside this
one, each request sent to both in alternating order. Medians go into a table and
``bench/results/pod_segments.json``.

    .venv/bin/python bench/pod_segments.py --requests 40
    .venv/bin/python bench/pod_segments.py --baseline /tmp/kube-tts-main
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import time
from pathlib import Path

from common import MODELS, inference_server, say, table, write_results

TEXTS = {"one sentence": "Hi.", "two sentences": "Hi there. How are you today?"}
FORMATS = ["pcm", "wav", "mp3"]
GAP_S = 0.001


def answer_reads(url: str, text: str, fmt: str) -> tuple[int, int]:
    """(reads that returned bytes, reads 1 ms or more after the one before) of one answer."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": "bench", "input": text, "response_format": fmt}).encode()
    request = (
        f"POST /v1/audio/speech HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    reads = apart = 0
    data = b""
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        last = None
        while True:
            piece = sock.recv(1 << 20)
            if not piece:
                break
            now = time.perf_counter()
            reads += 1
            apart += last is None or now - last >= GAP_S
            last = now
            data += piece
            if data.endswith(b"0\r\n\r\n"):
                break
    if not data.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"{url}: {data[:200]!r}")
    return reads, apart


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", nargs="+", default=["piper", "espeak"], choices=sorted(MODELS))
    ap.add_argument("--requests", type=int, default=30, help="per engine, text, format and server")
    ap.add_argument("--baseline", type=Path, help="a checkout whose inference server runs beside this one")
    ap.add_argument("--output", default="pod_segments")
    args = ap.parse_args()
    rows, results = [], []
    for engine in args.engine:
        with contextlib.ExitStack() as stack:
            servers = {"this": stack.enter_context(inference_server(engine, MODELS[engine]))}
            if args.baseline:
                code = str((args.baseline / "inference_image").resolve())
                prelude = f"import sys; sys.path.insert(0, {code!r})"
                servers["baseline"] = stack.enter_context(inference_server(engine, MODELS[engine], prelude))
            for label, text in TEXTS.items():
                for fmt in FORMATS:
                    seen: dict[str, list[tuple[int, int]]] = {name: [] for name in servers}
                    for i in range(args.requests):
                        order = list(servers) if i % 2 == 0 else list(reversed(servers))
                        for name in order:
                            seen[name].append(answer_reads(servers[name], text, fmt))
                    for name, got in seen.items():
                        reads, apart = [r for r, _ in got], [a for _, a in got]
                        rows.append(
                            [engine, label, fmt, name, f"{statistics.median(reads):g}",
                             f"{statistics.median(apart):g}", max(reads)]
                        )  # fmt: skip
                        results.append(
                            {"engine": engine, "text": label, "format": fmt, "server": name,
                             "reads_median": statistics.median(reads), "apart_median": statistics.median(apart),
                             "reads": reads, "apart": apart}
                        )  # fmt: skip
                        say(f"{engine} {label} {fmt} {name}: {statistics.median(reads):g} reads per answer")
    print(
        "\nReads per answer until the end of the chunked body (median over "
        f"{args.requests} requests; 'apart': reads ≥ {GAP_S * 1000:g} ms after the one before)\n"
    )
    print(table(["engine", "text", "format", "server", "reads", "apart", "max reads"], rows))
    write_results(args.output, {"requests": args.requests, "rows": results})


if __name__ == "__main__":
    main()
