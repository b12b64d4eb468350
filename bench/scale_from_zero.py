"""Scale from zero: a request for a model at zero replicas → its first audio byte, broken down.

For each engine a TtsDeployment at ``replicas: 0`` is created in the platform namespace and a router
of the benchmark's own is started. Each run sends one streamed request and records, on this
machine's clock, what can be observed of the way to the first byte:

- the TtsDeployment's ``spec.replicas`` becoming 1 (the router's scale patch), from a watch;
- the pod being created, scheduled (``spec.nodeName``), its container running, and Ready, from a
  watch on the model's pods (Ready is not a step on the way: the router probes a starting pod's
  ``/readyz`` itself, ADR 0038; the table says how long after the grant it came);
- the inference server's own log lines "loading … model" (the process is up and its imports done)
  and "model ready in …" (model loaded and warmed), with their millisecond timestamps;
- the moment the router granted the request a pod: its arrival at the router (the first byte at
  the client less the router's ``kubetts_router_time_to_first_byte_seconds``) plus its queue wait
  (``kubetts_router_queue_wait_seconds``), both from the router's metrics;
- the first audio byte at the client.

Between runs the model is put back to sleep (``POST /v1/models/<name>/sleep``) and the next run
waits until its pods are gone. The table gives the median of the runs for every phase.

    .venv/bin/python bench/scale_from_zero.py                  # espeak and piper, 5 runs each
    .venv/bin/python bench/scale_from_zero.py --engine piper --runs 9
    .venv/bin/python bench/scale_from_zero.py --without-bytecode   # and each engine as the images were before
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import re
import time
from typing import Any

import aiohttp
from common import (
    JSON,
    NAMESPACE,
    Cluster,
    RouterProcess,
    eventually,
    median,
    metric_sum,
    say,
    table,
    write_results,
)
from kubernetes_asyncio import client, config, watch

TEXT = "Good morning."
# the phases of the way to the first byte, in order: (key, what it is, part of the control plane?)
PHASES = [
    ("patch", "request → scale patch seen (router: GET + PATCH of the scale subresource)", True),
    ("pod_created", "scale patch → pod created (operator, Deployment and ReplicaSet controllers)", True),
    ("scheduled", "pod created → scheduled (kube-scheduler)", True),
    ("started", "scheduled → container running (node agent: sandbox, network namespace, process)", True),
    ("imports", "container running → server loading (Python start and imports)", False),
    ("model_load", "model load and warm-up (the server's own 'model ready in')", False),
    ("router_sees", "model ready → router grants the request (its own /readyz probe of the starting pod)", True),
    ("first_byte", "router → first audio byte (forwarding, the first sentence's synthesis)", False),
]
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(line: str) -> float | None:
    m = LOG_TIME.match(line)
    if not m:
        return None
    local = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return local.timestamp()  # naive = this machine's local time, as the server logged it


class Recorder:
    """Watch events of the model's pods and of the TtsDeployment, each with its arrival time."""

    def __init__(self, api: client.ApiClient, model: str) -> None:
        self.core = client.CoreV1Api(api)
        self.objects = client.CustomObjectsApi(api)
        self.model = model
        self.events: list[tuple[float, str, JSON]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def _watch(self, kind: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        listing = await fn(*args, **kwargs)
        rv = listing["metadata"]["resourceVersion"] if isinstance(listing, dict) else listing.metadata.resource_version
        w = watch.Watch()
        async with w.stream(fn, *args, resource_version=rv, timeout_seconds=600, **kwargs) as stream:
            async for event in stream:
                self.events.append((time.time(), kind, event["raw_object"]))

    async def start(self) -> None:
        from tts_crds import names

        self.tasks = [
            asyncio.create_task(
                self._watch(
                    "pod",
                    self.core.list_namespaced_pod,
                    NAMESPACE,
                    label_selector=f"{names.LABEL_DEPLOYMENT}={self.model}",
                )
            ),
            asyncio.create_task(
                self._watch(
                    "ttsd",
                    self.objects.list_namespaced_custom_object,
                    names.GROUP,
                    names.VERSION,
                    NAMESPACE,
                    names.DEPLOYMENT_PLURAL,
                    field_selector=f"metadata.name={self.model}",
                )
            ),
        ]
        await asyncio.sleep(0.5)  # both watches open before the request goes out

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def first(self, kind: str, predicate: Any) -> float | None:
        return next((t for t, k, obj in self.events if k == kind and predicate(obj)), None)


def _ready(pod: JSON) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def _running(pod: JSON) -> bool:
    return any("running" in (s.get("state") or {}) for s in pod.get("status", {}).get("containerStatuses") or [])


async def one_run(cluster: Cluster, router: RouterProcess, model: str) -> JSON:
    await config.load_kube_config(config_file=cluster.kubeconfig)
    async with client.ApiClient() as api:
        rec = Recorder(api, model)
        await rec.start()
        before = router.metrics()
        t_req = time.time()
        first = 0.0
        async with aiohttp.ClientSession(headers=router.headers()) as http:
            body = {"model": model, "input": TEXT, "response_format": "pcm"}
            async with http.post(f"{router.url}/v1/audio/speech", json=body) as resp:
                if resp.status != 200:
                    raise SystemExit(f"the request failed: {resp.status} {await resp.text()}")
                async for chunk in resp.content.iter_any():
                    if chunk and not first:
                        first = time.time()
        # the router serves a pod before Kubernetes calls it Ready (ADR 0038): wait for that too
        for _ in range(100):
            if rec.first("pod", _ready):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        await rec.stop()
    after = router.metrics()

    def delta(name: str) -> float:
        return metric_sum(after, name, deployment=model) - metric_sum(before, name, deployment=model)

    # the router's clock starts when the request reaches it: place that on ours by its time to first byte
    arrived = first - delta("kubetts_router_time_to_first_byte_seconds_sum")
    granted = arrived + delta("kubetts_router_queue_wait_seconds_sum")

    pods = cluster.ready_pods(model)
    if len(pods) != 1:
        raise SystemExit(f"expected one ready pod of {model}, found {len(pods)}")
    logs = cluster.kubectl("logs", "-n", NAMESPACE, pods[0]["metadata"]["name"])
    loading = next((log_time(line) for line in logs.splitlines() if "tts_inference: loading" in line), None)
    loaded = next((log_time(line) for line in logs.splitlines() if "model ready in" in line), None)
    marks = {
        "request": t_req,
        "patch": rec.first("ttsd", lambda o: int(o["spec"].get("replicas", 0)) >= 1),
        "pod_created": rec.first("pod", lambda o: True),
        "scheduled": rec.first("pod", lambda o: bool(o["spec"].get("nodeName"))),
        "started": rec.first("pod", _running),
        "imports": loading,
        "model_load": loaded,
        "router_sees": granted,
        "first_byte": first,
    }
    # not a step on the way (ADR 0038: the router does not wait for it), but worth knowing
    pod_ready = rec.first("pod", _ready)
    missing = [k for k, v in marks.items() if not v]
    if missing:
        raise SystemExit(f"could not observe {missing}; events: {[(k, t) for t, k, _ in rec.events]}")
    order = ["request", *(p for p, _, _ in PHASES)]
    phases = {b: marks[b] - marks[a] for a, b in itertools.pairwise(order)}
    return {
        "phases": phases,
        "total": first - t_req,
        "pod": pods[0]["metadata"]["name"],
        # when Kubernetes called the pod Ready, relative to the router's grant (positive: after it)
        "pod_ready_after_grant": (pod_ready - granted) if pod_ready else None,
    }


def put_to_sleep(cluster: Cluster, router: RouterProcess, model: str) -> None:
    import httpx

    resp = httpx.post(f"{router.url}/v1/models/{model}/sleep", headers=router.headers(admin=True), timeout=30)
    if resp.status_code != 200:
        raise SystemExit(f"sleep failed: {resp.status_code} {resp.text}")
    eventually(lambda: not cluster.pods(model), 120, f"{model}'s pods to go away")
    eventually(lambda: (router.model(model) or {}).get("scaled_to_zero"), 30, "the router to see the model at zero")


# the images before issue 18 carried no bytecode: with the root read-only, Python compiled every module it
# imported on every start. Pointing its bytecode cache at a folder that does not exist does the same to
# today's image (PYTHONDONTWRITEBYTECODE is set there: nothing is written).
WITHOUT_BYTECODE = {"env": [{"name": "PYTHONPYCACHEPREFIX", "value": "/no-bytecode"}]}


def summary(engine: str, variant: str, results: list[JSON]) -> JSON:
    med = {p: median(r["phases"][p] for r in results) for p, _, _ in PHASES}
    totals = [r["total"] for r in results]
    control = [sum(r["phases"][p] for p, _, cp in PHASES if cp) for r in results]
    but_load = [r["total"] - r["phases"]["model_load"] for r in results]
    return {
        "engine": engine,
        "variant": variant,
        "runs": results,
        "median_phases": med,
        "median_total": median(totals),
        "min_total": min(totals),
        "max_total": max(totals),
        "median_all_but_model_load": median(but_load),
        "median_control_plane": median(control),
        "median_pod_ready_after_grant": median(
            r["pod_ready_after_grant"] for r in results if r["pod_ready_after_grant"] is not None
        ),
    }


def measure(cluster: Cluster, engine: str, runs: int, keep: bool, without_bytecode: bool) -> list[JSON]:
    """``runs`` wakes of the engine's model; with ``without_bytecode`` a second model of the same engine
    that compiles its imports on every start, the two woken in alternating order."""
    variants = {"": f"bench-zero-{engine}"}
    if without_bytecode:
        variants["without bytecode"] = f"bench-zero-{engine}-nopyc"
    say(f"TtsDeployments {', '.join(variants.values())}: {engine} at zero replicas; {runs} runs each")
    for variant, model in variants.items():
        cluster.apply_model(model, engine, 0, **(WITHOUT_BYTECODE if variant else {}))
    router = RouterProcess(cluster)
    results: dict[str, list[JSON]] = {v: [] for v in variants}
    try:
        for model in variants.values():
            eventually(lambda m=model: router.model(m), 30, "the router to know the model")
            if cluster.pods(model):
                put_to_sleep(cluster, router, model)
        order = list(variants)
        for i in range(runs):
            for variant in order if i % 2 == 0 else order[::-1]:
                model = variants[variant]
                time.sleep(2)  # let the machine settle after the pod went away
                r = asyncio.run(one_run(cluster, router, model))
                say(f"{engine}{' ' + variant if variant else ''} run {i + 1}: first byte after {r['total']:.2f} s")
                results[variant].append(r)
                put_to_sleep(cluster, router, model)
    finally:
        router.stop()
        if not keep:
            for model in variants.values():
                cluster.delete_model(model)
    return [summary(engine, variant, got) for variant, got in results.items()]


def print_table(results: list[JSON]) -> None:
    names = [r["engine"] + (f", {r['variant']}" if r["variant"] else "") for r in results]
    headers = ["phase", *(f"{name} (median of {len(r['runs'])})" for name, r in zip(names, results, strict=True))]
    rows = [[what, *(f"{r['median_phases'][key] * 1000:.0f} ms" for r in results)] for key, what, _ in PHASES]
    rows.append(["**request → first audio byte**", *(f"**{r['median_total']:.2f} s**" for r in results)])
    rows.append(["range of the runs", *(f"{r['min_total']:.2f}–{r['max_total']:.2f} s" for r in results)])
    but_load = [f"{r['median_all_but_model_load']:.2f} s" for r in results]
    rows.append(["everything but the model load (target ≤ 0.8 s)", *but_load])
    rows.append(
        [
            "control plane alone (patch, operator, scheduler, agent, router's probe)",
            *(f"{r['median_control_plane']:.2f} s" for r in results),
        ]
    )
    rows.append(
        [
            "(Kubernetes called the pod Ready this long after the router's grant)",
            *(f"{r['median_pod_ready_after_grant'] * 1000:.0f} ms" for r in results),
        ]
    )
    print("\nScale from zero: request for a model at zero → first audio byte\n")
    print(table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", choices=["espeak", "piper"], help="default: espeak and piper")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the TtsDeployments in place afterwards")
    parser.add_argument(
        "--without-bytecode",
        action="store_true",
        help="also wake a second model per engine whose server compiles every import (as the images before issue 18)",
    )
    args = parser.parse_args()
    cluster = Cluster.up()
    engines = args.engine or ["espeak", "piper"]
    results = [r for engine in engines for r in measure(cluster, engine, args.runs, args.keep, args.without_bytecode)]
    print_table(results)
    write_results("scale_from_zero", {"text": TEXT, "engines": results})


if __name__ == "__main__":
    main()
