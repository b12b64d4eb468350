"""GPU capacity, allocatable and requested per node, from Node and Pod objects (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tts_crds import names

JSON = dict[str, Any]

_KNOWN_GPU_RESOURCES = {names.DEFAULT_GPU_RESOURCE, "amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe"}
_MIG = re.compile(r"^nvidia\.com/mig-[0-9a-z.]+$")
_QUANTITY = re.compile(r"^([0-9]+)$")


def is_gpu_resource(name: str, extra: Iterable[str] = ()) -> bool:
    return name in _KNOWN_GPU_RESOURCES or name in set(extra) or bool(_MIG.match(name))


def _count(value: Any) -> int:
    """Extended resources are whole numbers."""
    m = _QUANTITY.match(str(value).strip())
    return int(m.group(1)) if m else 0


def pod_gpu_requests(pod: JSON, resource: str) -> int:
    """What the scheduler counts for ``pod``: max(sum over containers, largest init container)."""
    spec = pod.get("spec") or {}

    def req(c: JSON) -> int:
        res = c.get("resources") or {}
        # for extended resources a limit alone implies the same request
        return _count((res.get("requests") or {}).get(resource, (res.get("limits") or {}).get(resource, 0)))

    containers = sum(req(c) for c in spec.get("containers") or [])
    init = max((req(c) for c in spec.get("initContainers") or []), default=0)
    return max(containers, init)


def node_gpus(nodes: list[JSON], pods: list[JSON], extra_resources: Iterable[str] = ()) -> list[JSON]:
    """One entry per node that advertises any GPU resource."""
    extra = set(extra_resources)
    out = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        status = node.get("status") or {}
        capacity = status.get("capacity") or {}
        allocatable = status.get("allocatable") or {}
        resources = sorted(r for r in {*capacity, *allocatable} if is_gpu_resource(r, extra))
        if not resources:
            continue
        on_node = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name]
        labels = node["metadata"].get("labels") or {}
        out.append(
            {
                "node": name,
                "product": labels.get(names.GPU_PRODUCT_LABEL),
                "memory_mib_per_gpu": _count(labels.get("nvidia.com/gpu.memory", "")) or None,
                "ready": any(
                    c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
                ),
                "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
                "resources": {
                    r: {
                        "capacity": _count(capacity.get(r, 0)),
                        "allocatable": _count(allocatable.get(r, 0)),
                        "requested": sum(pod_gpu_requests(p, r) for p in on_node),
                    }
                    for r in resources
                },
            }
        )
    return out
