"""Scale-to-zero and scale-on-load decisions (pure; unit-tested).

The router publishes, per TtsDeployment, requests in flight and queued and the time the last one
finished. The operator sums them over every router replica and decides, once per period:

1. keep ``spec.replicas`` within ``minReplicas..maxReplicas`` (a ``kubectl scale`` outside them is
   pulled back in; inside them it is honoured until load says otherwise);
2. scale to ``minReplicas`` once nothing is in flight or queued and ``scaleToZero.idleSeconds``
   have passed since the later of the last finished request and the moment the deployment became
   Ready — never while pods are pending or loading (they would be killed mid-load);
3. scale up when in-flight + queued exceeds ``targetConcurrency * ready`` on two consecutive
   periods (one busy sample is not a trend);
4. scale down while serving only when load has fitted in fewer replicas for a whole idle window,
   with a 50 % margin, so a burst's tail does not make replicas flap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from prometheus_client.parser import text_string_to_metric_families

INFLIGHT = "kubetts_router_inflight_requests"
QUEUED = "kubetts_router_queued_requests"
LAST_REQUEST = "kubetts_router_last_request_timestamp_seconds"

DOWN_MARGIN = 0.5


@dataclass(frozen=True)
class Load:
    inflight: int = 0
    queued: int = 0
    last_request: float | None = None  # unix time the last request finished

    @property
    def busy(self) -> int:
        return self.inflight + self.queued

    def __add__(self, other: Load) -> Load:
        last = max((t for t in (self.last_request, other.last_request) if t is not None), default=None)
        return Load(self.inflight + other.inflight, self.queued + other.queued, last)


def parse_router_metrics(text: str) -> dict[tuple[str, str], Load]:
    """(namespace, deployment) -> Load from one router's Prometheus exposition."""
    out: dict[tuple[str, str], Load] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in (INFLIGHT, QUEUED, LAST_REQUEST):
                continue
            key = (sample.labels.get("namespace", ""), sample.labels.get("deployment", ""))
            cur = out.get(key, Load())
            if sample.name == INFLIGHT:
                cur = replace(cur, inflight=int(sample.value))
            elif sample.name == QUEUED:
                cur = replace(cur, queued=int(sample.value))
            elif sample.value > 0:
                cur = replace(cur, last_request=float(sample.value))
            out[key] = cur
    return out


def merge(loads: Iterable[dict[tuple[str, str], Load]]) -> dict[tuple[str, str], Load]:
    total: dict[tuple[str, str], Load] = {}
    for one in loads:
        for key, load in one.items():
            total[key] = total.get(key, Load()) + load
    return total


@dataclass(frozen=True)
class Inputs:
    desired: int
    min_replicas: int
    max_replicas: int
    target: int
    idle_seconds: float
    ready: int
    pods: int
    ready_since: float | None  # when the Ready condition last became True
    last_activity: float | None  # status.lastActivityTime
    load: Load | None  # None: no router could be asked; do not guess
    now: float
    load_taken_at: float | None = None  # when ``load`` was scraped (unix time)


@dataclass(frozen=True)
class Memory:
    """Per-deployment hysteresis state, kept in memory between periods."""

    above_since: float | None = None
    below_since: float | None = None
    zero_since: float | None = None  # when a decision first saw the model at zero


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str  # unchanged | bounds | idle | load-up | load-down | wake
    last_activity: float | None
    memory: Memory

    @property
    def changed(self) -> bool:
        return self.reason != "unchanged"


def decide(i: Inputs, memory: Memory) -> Decision:
    last = i.last_activity
    if i.load is not None and i.load.last_request is not None:
        last = max(last or 0.0, i.load.last_request)

    def done(replicas: int, reason: str, mem: Memory = memory) -> Decision:
        if replicas == i.desired:
            reason = "unchanged"
        return Decision(replicas, reason, last, mem)

    bounded = min(max(i.desired, i.min_replicas), i.max_replicas)
    if bounded != i.desired:
        return done(bounded, "bounds", Memory())
    if i.load is None:
        return done(i.desired, "unchanged", Memory())
    busy = i.load.busy
    settled = i.ready == i.desired and i.pods == i.desired

    if i.desired == 0:
        # The router wakes a model at zero; this is the safety net if it could not. Only load scraped
        # after the model was seen at zero counts: a sample from just before someone put it to sleep
        # (the admin sleep button right after a request) would otherwise wake it straight back up.
        zero_since = memory.zero_since if memory.zero_since is not None else i.now
        fresh = i.load_taken_at is not None and i.load_taken_at > zero_since
        if busy > 0 and fresh:
            return done(max(1, i.min_replicas), "wake", Memory())
        return done(0, "unchanged", Memory(zero_since=zero_since))

    if busy == 0 and i.desired > i.min_replicas and settled:
        idle_from = max(t for t in (last, i.ready_since, 0.0) if t is not None)
        if i.now - idle_from >= i.idle_seconds:
            return done(i.min_replicas, "idle", Memory())

    if i.ready > 0 and busy > i.target * i.ready:
        want = min(i.max_replicas, math.ceil(busy / i.target))
        if want > i.desired:
            if memory.above_since is None:
                return done(i.desired, "unchanged", Memory(above_since=i.now))
            return done(want, "load-up", Memory())
        return done(i.desired, "unchanged", Memory())

    floor = max(i.min_replicas, 1)
    if settled and i.desired > floor and busy <= i.target * (i.desired - 1) * DOWN_MARGIN:
        since = memory.below_since if memory.below_since is not None else i.now
        if i.now - since >= i.idle_seconds:
            want = max(floor, math.ceil(busy / i.target))
            return done(want, "load-down", Memory())
        return done(i.desired, "unchanged", Memory(below_since=since))
    return done(i.desired, "unchanged", Memory())
