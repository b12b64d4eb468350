"""Productions (issue 17): a long text rendered by a TtsJob at 1 and 2 model replicas, against one
client streaming the same text straight to one pod, in one run.

A piper TtsDeployment of the benchmark's own (``bench-prod``, joe) is scaled to each replica count
and held there. For each round:

- **direct**: one client streams the text as pcm from one pod (its pod IP), in pieces of whole
  paragraphs under the server's 4,096-character limit, one after another, reading each to the end:
  audio seconds over wall seconds, what a user's own script would get without kube-tts;
- **job at N replicas**: a TtsJob of the same text (``deployment: bench-prod``, ``parallelism: N``,
  ``format`` as given) from ``kubectl apply`` until its ``status.phase`` is ``Complete``: the
  seconds of speech it rendered (``status.progress.audioSeconds``; its chapter files also hold the
  planned pauses, which cost nothing) over that wall time (plan, Job, renderer pods, every chunk
  through the router, joins, encoding all included).

Each job's files are deleted with it (``retain: false``). The table gives the medians over the
rounds and each job's ratio to the direct stream of the same round.

    .venv/bin/python bench/productions.py                     # 30,000 characters, 1 round
    .venv/bin/python bench/productions.py --chars 6000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import httpx
from common import JSON, NAMESPACE, Cluster, eventually, machine, median, say, table, write_results

MODEL = "bench-prod"
# varied, ordinary prose: sentences of 60–140 characters, paragraphs of five
SUBJECTS = ("The harbour", "Our old neighbour", "The evening train", "A quiet library", "The mountain road")
VERBS = ("waited for", "remembered", "carried", "looked across", "slowly passed")
OBJECTS = (
    "the long grey wall by the river",
    "a letter that nobody had opened for years",
    "the small bright windows of the town",
    "every boat that came in before the storm",
    "the smell of bread and rain in the morning",
)
ENDINGS = ("and then the day went on.", "while the bells rang twice.", "as the light began to fade.", "")


def prose(chars: int) -> str:
    """Deterministic English prose of about ``chars`` characters, in paragraphs."""
    paragraphs, sentences, total, i = [], [], 0, 0
    while total < chars:
        s = SUBJECTS[i % 5]
        v = VERBS[(i // 5) % 5]
        o = OBJECTS[(i // 25) % 5]
        e = ENDINGS[i % 4]
        sentence = f"{s} {v} {o}{', ' + e if e else '.'}"
        sentences.append(sentence)
        total += len(sentence) + 1
        if len(sentences) == 5:
            paragraphs.append(" ".join(sentences))
            sentences = []
        i += 1
    if sentences:
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def scale(cluster: Cluster, replicas: int) -> list[dict]:
    cluster.apply_model(MODEL, "piper", replicas, minReplicas=replicas, maxReplicas=max(replicas, 1))
    return eventually(
        lambda: (pods := cluster.ready_pods(MODEL)) and len(pods) == replicas and pods,
        timeout=300,
        what=f"{replicas} ready replica(s) of {MODEL}",
        interval=1,
    )


def pieces(text: str, limit: int = 4000) -> list[str]:
    """The text in pieces of whole paragraphs under the inference server's input limit (4,096)."""
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        if out and len(out[-1]) + 2 + len(paragraph) <= limit:
            out[-1] += "\n\n" + paragraph
        else:
            out.append(paragraph)
    return out


def direct(pod: dict, text: str) -> tuple[float, float]:
    """(audio seconds, wall seconds) of the text streamed as pcm from the pod itself, one piece
    after another as a user's own script would (a request takes at most 4,096 characters)."""
    url = f"http://{pod['status']['podIP']}:8000/v1/audio/speech"
    received = 0
    rate = 22050
    t0 = time.perf_counter()
    for piece in pieces(text):
        body = {"model": MODEL, "input": piece, "response_format": "pcm"}
        with httpx.stream("POST", url, json=body, timeout=httpx.Timeout(30, read=600)) as resp:
            resp.raise_for_status()
            rate = int(resp.headers.get("x-sample-rate", rate))
            for chunk in resp.iter_raw():
                received += len(chunk)
    return received / 2 / rate, time.perf_counter() - t0


def job(cluster: Cluster, text: str, parallelism: int, fmt: str, timeout: float) -> JSON:
    """Apply a TtsJob, wait for Complete; its audio seconds, wall seconds and chunk count."""
    name = f"bench-prod-{uuid.uuid4().hex[:5]}"
    obj = {
        "apiVersion": "tts.kubetts.io/v1alpha1",
        "kind": "TtsJob",
        "metadata": {"name": name},
        "spec": {
            "deployment": MODEL,
            "text": text,
            "format": fmt,
            "parallelism": parallelism,
            "retain": False,
        },
    }
    t0 = time.perf_counter()
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_=json.dumps(obj))
    last = ""
    try:
        while True:
            status = (cluster.get("ttsjob", name) or {}).get("status", {})
            summary = (status.get("progress") or {}).get("summary", "")
            if summary != last:
                say(f"  {name}: {status.get('phase')} {summary} ({time.perf_counter() - t0:.0f} s)")
                last = summary
            if status.get("phase") == "Complete":
                wall = time.perf_counter() - t0
                break
            if status.get("phase") == "Failed":
                raise SystemExit(f"{name} failed: {status.get('conditions')}")
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"{name} did not complete in {timeout:g} s: {status}")
            time.sleep(1)
        progress = status.get("progress") or {}
        files = sum(c.get("durationSeconds") or 0 for c in status.get("chapters") or [])
        # speech only, as the direct stream counts it: the chapter files also hold the planned pauses
        return {
            "name": name,
            "audio_seconds": progress.get("audioSeconds", 0.0),
            "file_seconds": files,
            "wall_seconds": wall,
            "chunks": progress.get("chunksTotal", 0),
        }
    finally:
        cluster.kubectl("delete", "ttsjob", name, "-n", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=30_000, help="length of the text (default 30,000)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--replicas", default="1,2", help="model replica counts to run the job at")
    parser.add_argument("--format", default="mp3", choices=("mp3", "opus", "flac", "wav"))
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    levels = [int(n) for n in args.replicas.split(",")]
    text = prose(args.chars)
    cluster = Cluster.up()
    rounds: dict[str, list[JSON]] = {"direct": [], **{f"job x{n}": [] for n in levels}}
    try:
        for r in range(args.rounds):
            say(f"round {r + 1} of {args.rounds}: {len(text):,} characters")
            pods = scale(cluster, 1)
            audio, wall = direct(pods[0], text)
            rounds["direct"].append({"audio_seconds": audio, "wall_seconds": wall})
            say(f"  direct: {audio:.0f} s of audio in {wall:.1f} s ({audio / wall:.1f}×)")
            for n in levels:
                scale(cluster, n)
                result = job(cluster, text, n, args.format, args.timeout)
                rounds[f"job x{n}"].append(result)
                say(f"  job at {n} replica(s): {result['audio_seconds']:.0f} s in {result['wall_seconds']:.1f} s")
    finally:
        cluster.delete_model(MODEL)
    speed = {k: [x["audio_seconds"] / x["wall_seconds"] for x in v] for k, v in rounds.items()}
    ratios = {k: [s / d for s, d in zip(v, speed["direct"], strict=True)] for k, v in speed.items() if k != "direct"}
    rows = [["direct (one pcm stream, one pod)", f"{median(speed['direct']):.2f}", "1.00"]]
    rows += [[f"TtsJob, {k[5:]} replica(s)", f"{median(speed[k]):.2f}", f"{median(ratios[k]):.2f}"] for k in ratios]
    print(table(["path", "audio s per wall s (median)", "ratio to direct"], rows))
    print("target: ≥ 0.9× of direct at 1 replica")
    write_results(
        "productions",
        {
            "machine": machine(),
            "chars": len(text),
            "format": args.format,
            "rounds": rounds,
            "speed": speed,
            "ratio_to_direct": ratios,
        },
    )


if __name__ == "__main__":
    main()
