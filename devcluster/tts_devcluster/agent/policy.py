"""A CNI policy agent's part of the node agent: every pod's ingress firewall from the
NetworkPolicies (the rules themselves are worked out in netpol.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import net
from ..kube import KubeClient
from ..layout import BRIDGE_IP
from . import netpol

if TYPE_CHECKING:
    from .worker import PodWorker

JSON = dict[str, Any]


class PolicyAgent:
    def __init__(self, client: KubeClient, workers: Mapping[str, PodWorker]) -> None:
        self.client = client
        self.workers = workers  # the agent's live map, uid -> worker
        self._lock = asyncio.Lock()

    async def sync(self) -> None:
        """Program every pod's firewall now. Pods call this once they have an address and before
        their containers start, so a new pod is both isolated and admitted by its peers' policies
        from its first packet (a CNI does the same before the pod runs)."""
        async with self._lock:
            await self._sync()

    async def _sync(self) -> None:
        policies = (await self.client.get("/apis/networking.k8s.io/v1/networkpolicies"))["items"]
        pods: list[JSON] = []
        namespaces: dict[str, JSON] = {}
        if policies:
            pods = (await self.client.get("/api/v1/pods"))["items"]
            namespaces = {n["metadata"]["name"]: n for n in (await self.client.get("/api/v1/namespaces"))["items"]}
            # this agent knows addresses before the API does (status is written after)
            local = {uid: w.ip for uid, w in self.workers.items() if w.ip}
            for pod in pods:
                ip = local.get(pod["metadata"]["uid"])
                if ip:
                    pod.setdefault("status", {})["podIP"] = ip
        for worker in list(self.workers.values()):
            if not worker.netns:
                continue
            allows = netpol.ingress_allows(worker.pod, policies, pods, namespaces) if policies else None
            text = netpol.render_filter(allows, BRIDGE_IP)
            if text != worker.filter_rules:
                await asyncio.to_thread(net.apply_pod_filter, worker.netns, text)
                worker.filter_rules = text
