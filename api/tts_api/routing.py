"""Which inference pods can take a request, and which one should (pure logic, unit-tested)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tts_crds import names
from tts_crds.times import parse_time

JSON = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str
    port: int
    # the pod's container restarts so far: a restarted container is a new server on the same pod
    # (a request that failed on the old one may try the new one); not part of the endpoint's identity
    restarts: int = field(default=0, compare=False)

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"


def _ready_condition(pod: JSON) -> JSON:
    status = pod.get("status") or {}
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})


def _reachable(pod: JSON) -> bool:
    """Has an IP and is not being deleted."""
    return bool((pod.get("status") or {}).get("podIP")) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def pod_is_ready(pod: JSON) -> bool:
    return _reachable(pod) and _ready_condition(pod).get("status") == "True"


def pod_is_starting(pod: JSON) -> bool:
    """Running with an IP, not yet Ready: the kubelet's readiness probe has not passed (yet)."""
    status = pod.get("status") or {}
    return _reachable(pod) and status.get("phase") == "Running" and not pod_is_ready(pod)


def deployment_of(pod: JSON) -> str | None:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_DEPLOYMENT)


class EarlyReady:
    """Starting pods the router saw answer ``/readyz`` itself, before the kubelet marked them Ready.

    A model woken from zero is served as soon as its server says it is ready, not a readiness-probe
    period later (ADR 0038). Such a pod counts as an endpoint only while Kubernetes has not spoken
    since: an entry is for one pod incarnation (its uid), lapses after ``ttl`` seconds (by then the
    kubelet's probe has run several times), and is void once the pod's Ready condition changed after
    the router's probe (it became Ready and so needs no entry, or it was found unready) or the pod is
    being deleted.
    """

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self._seen: dict[str, tuple[str, float]] = {}  # pod name -> (uid, unix time its /readyz said 200)

    def mark(self, pod: JSON) -> None:
        meta = pod.get("metadata") or {}
        now = self.clock()
        # entries of pods that went away are never asked about again: drop the lapsed ones here
        self._seen = {name: seen for name, seen in self._seen.items() if now - seen[1] <= self.ttl}
        self._seen[meta.get("name", "")] = (meta.get("uid", ""), now)

    def __len__(self) -> int:
        return len(self._seen)

    def admits(self, pod: JSON) -> bool:
        meta = pod.get("metadata") or {}
        seen = self._seen.get(meta.get("name", ""))
        if seen is None:
            return False
        uid, at = seen
        if uid != meta.get("uid", "") or self.clock() - at > self.ttl or not pod_is_starting(pod):
            self._seen.pop(meta.get("name", ""), None)
            return False
        changed = _ready_condition(pod).get("lastTransitionTime")
        # RFC 3339 with whole seconds: a change in the same second as the probe cannot be told
        # apart from one before it; the ttl bounds that case
        return not (changed and _unix(changed) > at)

    def to_probe(self, deployment: str, pods: dict[str, JSON]) -> list[JSON]:
        """The deployment's starting pods the router has not yet seen ready."""
        return [
            p for p in pods.values() if deployment_of(p) == deployment and pod_is_starting(p) and not self.admits(p)
        ]


def _unix(timestamp: str) -> float:
    try:
        parsed = parse_time(timestamp)
    except ValueError:
        parsed = None
    if parsed is None:
        return float("inf")  # unreadable: take it as newer than any probe
    return parsed


def endpoint_of(pod: JSON) -> Endpoint:
    """Where a pod with an IP serves the inference API."""
    status = pod["status"]
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    return Endpoint(pod["metadata"]["name"], status["podIP"], names.INFERENCE_PORT, restarts)


def endpoints_for(deployment: str, pods: dict[str, JSON], early: EarlyReady | None = None) -> list[Endpoint]:
    """Pods of one TtsDeployment (by the label the operator puts on them) that can take requests:
    Ready ones, and starting ones in ``early``."""
    out = [
        endpoint_of(pod)
        for pod in pods.values()
        if deployment_of(pod) == deployment and (pod_is_ready(pod) or (early is not None and early.admits(pod)))
    ]
    return sorted(out, key=lambda e: e.pod)


class LeastOutstanding:
    """Least-outstanding-requests choice with a per-pod cap; ties go to the pod used longest ago."""

    def __init__(self, per_pod_cap: int) -> None:
        self.cap = per_pod_cap
        self.outstanding: dict[str, int] = {}
        self._tick = 0
        self._last: dict[str, int] = {}

    def pick(self, endpoints: list[Endpoint], exclude: set[str] | None = None) -> Endpoint | None:
        exclude = exclude or set()
        candidates = [e for e in endpoints if e.pod not in exclude and self.outstanding.get(e.pod, 0) < self.cap]
        if not candidates:
            return None
        best = min(candidates, key=lambda e: (self.outstanding.get(e.pod, 0), self._last.get(e.pod, -1)))
        self._tick += 1
        self._last[best.pod] = self._tick
        self.outstanding[best.pod] = self.outstanding.get(best.pod, 0) + 1
        return best

    def release(self, endpoint: Endpoint) -> None:
        left = self.outstanding.get(endpoint.pod, 0) - 1
        if left > 0:
            self.outstanding[endpoint.pod] = left
        else:
            self.outstanding.pop(endpoint.pod, None)
