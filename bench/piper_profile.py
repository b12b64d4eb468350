"""Where the inference server's time goes with piper under load: py-spy on ``python -m
tts_inference`` (engine piper, joe) while closed-loop clients ask for ``piper_peer.TEXT`` as
streamed pcm (issue 18, item 1: the per-request overheads, profiled).

py-spy samples the server's Python threads that are on a CPU (``--idle`` off), so a thread waiting
for onnxruntime's pool or for the socket is not counted; time in onnxruntime's C++ under
``Session.run`` counts as that frame's own. The share outside ``Session.run`` is what the request
path (HTTP, phonemes, the hand-over, numpy) costs beside the model. The raw profile is kept in
``bench/results/piper_profile.txt`` and summarised by ``bench/flame_summary.py``.

    .venv/bin/python bench/piper_profile.py
    .venv/bin/python bench/piper_profile.py --clients 8 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from common import MODELS, RESULTS, inference_server, pids_with_env, say
from flame_summary import stacks, summary
from piper_peer import Server, load


async def clients(server: Server, count: int, seconds: float) -> dict:
    async with aiohttp.ClientSession() as session:
        return await load(server, session, count, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12.0, help="how long py-spy samples")
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = RESULTS / "piper_profile.txt"
    with inference_server("piper", MODELS["piper"]) as url:
        port = str(urlsplit(url).port)
        (pid,) = pids_with_env("KUBETTS_PORT", port)
        served: list[dict] = []
        server = Server("kube-tts", url, pid)
        loop = threading.Thread(
            target=lambda: served.append(asyncio.run(clients(server, args.clients, args.seconds + 6))), daemon=True
        )
        loop.start()
        time.sleep(3)  # past the first requests' warm-up
        say(f"py-spy on pid {pid}, {args.clients} clients, {args.seconds:.0f} s")
        record = ["record", "--pid", str(pid), "--rate", str(args.rate), "--duration", str(int(args.seconds))]
        subprocess.run([spy, *record, "--format", "raw", "--nonblocking", "--output", str(out)], check=True)
        loop.join()
    say(f"{served[0]['requests'] if served else 0} answers read; profile in {out}")
    print(summary(stacks(out.read_text()), args.top))


if __name__ == "__main__":
    main()
