"""The autoscaler loop: scrape the routers' load, decide replicas for every TtsDeployment, write them.

One loop for every object, not a Kopf timer per object: Kopf puts a finalizer on objects with
timers, so deleting one would need the operator. The decisions are ``autoscale.decide`` (pure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names
from tts_crds.models import InvalidSpec, TtsDeploymentStatus
from tts_crds.times import iso, now_iso, parse_time

from . import autoscale, kube
from .children import deployment_spec
from .runtime import Runtime, key_of
from .status import condition_of

log = logging.getLogger("tts_operator")


async def scrape_loop(rt: Runtime) -> None:
    settings = rt.settings
    while True:
        try:
            urls = await rt.kube.router_metrics_urls(
                settings.router_selector, settings.router_namespace, settings.metrics_urls
            )
            loads = await kube.scrape(rt.http, urls) if urls else None
            rt.scrape.update(loads)
        except ApiException as exc:
            log.warning("cannot find routers to scrape: %s %s", exc.status, exc.reason)
            rt.scrape.update(None)
        except Exception:  # the loop must outlive an apiserver restart, or autoscaling stops for good
            log.exception("router scrape failed; retrying")
            rt.scrape.update(None)
        await asyncio.sleep(settings.autoscale_period_seconds)


async def autoscale_loop(rt: Runtime) -> None:
    """Every period, decide replicas for every known TtsDeployment."""
    while True:
        await asyncio.sleep(rt.settings.autoscale_period_seconds)
        for body in list(rt.cache.deployments.values()):
            ns, name = key_of(body)
            try:
                await autoscale_one(rt, body)
            except ApiException as exc:
                log.warning("autoscaling %s/%s: %s %s", ns, name, exc.status, exc.reason)
            except Exception:  # one object must not stop autoscaling for the others
                log.exception("autoscaling %s/%s failed", ns, name)


def inputs_of(rt: Runtime, body: dict[str, Any]) -> autoscale.Inputs | None:
    """What ``decide`` needs to know about one TtsDeployment; None when it is not to be scaled."""
    if body["metadata"].get("deletionTimestamp"):
        return None
    try:
        spec = deployment_spec(body)
    except InvalidSpec:
        return None
    status = dict(body.get("status") or {})
    ready = condition_of({"status": status}, "Ready") or {}
    load = rt.scrape.load_of(key_of(body), max_age=3 * rt.settings.autoscale_period_seconds)
    return autoscale.Inputs(
        desired=spec.replicas,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        target=spec.target_concurrency,
        idle_seconds=spec.scale_to_zero.idle_seconds,
        ready=int(status.get("readyReplicas") or 0),
        pods=int(status.get("replicas") or 0),
        ready_since=parse_time(ready.get("lastTransitionTime")) if ready.get("status") == "True" else None,
        last_activity=parse_time(status.get("lastActivityTime")),
        load=load,
        now=time.time(),
        load_taken_at=rt.scrape.taken_at if load is not None else None,
    )


async def autoscale_one(rt: Runtime, body: dict[str, Any]) -> None:
    inputs = inputs_of(rt, body)
    if inputs is None:
        return
    key = key_of(body)
    decision = autoscale.decide(inputs, rt.scale_memory.get(key, autoscale.Memory()))
    rt.scale_memory[key] = decision.memory
    status = TtsDeploymentStatus()
    recorded = inputs.last_activity
    if decision.last_activity is not None and (recorded is None or decision.last_activity > recorded + 0.5):
        status.last_activity_time = iso(decision.last_activity)
    if decision.changed:
        if not await rt.kube.scale_replicas(*key, decision.replicas, body["metadata"].get("resourceVersion")):
            return  # changed meanwhile; decide again next period
        message = scale_message(decision, inputs)
        log.info("%s/%s: %s", *key, message)
        reason = "ScaledToZero" if decision.replicas == 0 else "Scaled"
        await rt.kube.event(body, reason, message)
        if decision.replicas == 0:
            status.scaled_to_zero_at = now_iso()
    if patch := status.patch():
        await rt.kube.patch_status(names.DEPLOYMENT_PLURAL, *key, patch)


def scale_message(d: autoscale.Decision, i: autoscale.Inputs) -> str:
    busy = i.load.busy if i.load else 0
    why = {
        "idle": f"idle for {i.idle_seconds:.0f}s",
        "load-up": f"{busy} request(s) in flight or queued for {i.ready} ready replica(s)",
        "load-down": f"load of {busy} fits fewer replicas",
        "bounds": f"kept within {i.min_replicas}..{i.max_replicas}",
        "wake": f"{busy} request(s) waiting",
    }[d.reason]
    return f"scaled from {i.desired} to {d.replicas} replica(s): {why}"
