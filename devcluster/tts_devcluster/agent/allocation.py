"""What the node hands out to each pod: addresses from its podCIDR and GPU indices."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ip: str
    pod_cidr: str
    gpus: int


class Ipam:
    """Pod IPs from each node's podCIDR; a pod keeps the IP its status already names."""

    def __init__(self) -> None:
        self.used: dict[str, dict[str, str]] = {}  # node -> uid -> ip

    def allocate(self, node: NodeInfo, uid: str, preferred: str | None) -> str:
        taken = self.used.setdefault(node.name, {})
        if uid in taken:
            return taken[uid]
        network = ipaddress.ip_network(node.pod_cidr)
        in_use = set(taken.values())
        if preferred and ipaddress.ip_address(preferred) in network and preferred not in in_use:
            taken[uid] = preferred
            return preferred
        for host in network.hosts():
            ip = str(host)
            if ip.endswith(".1") or ip in in_use:
                continue
            taken[uid] = ip
            return ip
        raise ValueError(f"node {node.name}: pod CIDR {node.pod_cidr} is exhausted")

    def release(self, node: NodeInfo, uid: str) -> None:
        self.used.get(node.name, {}).pop(uid, None)


class GpuAllocator:
    """Hands each pod distinct GPU indices on its node, like the NVIDIA device plugin."""

    def __init__(self) -> None:
        self.used: dict[str, dict[str, list[int]]] = {}

    def allocate(self, node: NodeInfo, uid: str, count: int) -> list[int]:
        if count <= 0:
            return []
        taken = self.used.setdefault(node.name, {})
        if uid in taken:
            return taken[uid]
        busy = {i for ids in taken.values() for i in ids}
        free = [i for i in range(node.gpus) if i not in busy]
        if len(free) < count:
            raise ValueError(f"node {node.name}: {count} GPU(s) requested, {len(free)} free")
        taken[uid] = free[:count]
        return taken[uid]

    def release(self, node: NodeInfo, uid: str) -> None:
        self.used.get(node.name, {}).pop(uid, None)
