"""Which inference pods can take a request, and which one should (pure logic, unit-tested)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tts_crds import names

JSON = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"


def pod_is_ready(pod: JSON) -> bool:
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def endpoints_for(deployment: str, pods: dict[str, JSON]) -> list[Endpoint]:
    """Ready pods of one TtsDeployment, by the label the operator puts on them."""
    out = []
    for name, pod in pods.items():
        labels = pod.get("metadata", {}).get("labels") or {}
        if labels.get(names.LABEL_DEPLOYMENT) != deployment or not pod_is_ready(pod):
            continue
        out.append(Endpoint(name, pod["status"]["podIP"], names.INFERENCE_PORT))
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
