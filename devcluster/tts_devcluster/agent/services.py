"""kube-proxy's part of the node agent: ClusterIP NAT from Services and EndpointSlices, and the
Service names every pod's /etc/hosts lists."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .. import net
from ..kube import KubeClient
from ..layout import CLUSTER_DOMAIN

JSON = dict[str, Any]


def service_rules(svcs: list[JSON], slices: list[JSON]) -> tuple[list[net.ServiceRule], list[tuple[str, str, str]]]:
    """The NAT rules for ``svcs`` (ready endpoints only) and their ``(namespace, name, clusterIP)``, sorted."""
    by_service: dict[tuple[str, str], list[JSON]] = {}
    for s in slices:
        owner = s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
        if owner:
            by_service.setdefault((s["metadata"]["namespace"], owner), []).append(s)
    rules = []
    services = []
    for svc in svcs:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        ip = svc["spec"].get("clusterIP")
        if not ip or ip == "None":
            continue
        services.append((ns, name, ip))
        for port in svc["spec"].get("ports", []):
            endpoints: list[tuple[str, int]] = []
            for sl in by_service.get((ns, name), []):
                target = next(
                    (p["port"] for p in sl.get("ports") or [] if p.get("name", "") == port.get("name", "")), None
                )
                if target is None:
                    continue
                for ep in sl.get("endpoints", []):
                    if ep.get("conditions", {}).get("ready", True):
                        endpoints.extend((addr, int(target)) for addr in ep.get("addresses", []))
            rules.append(net.ServiceRule(ip, int(port["port"]), port.get("protocol", "TCP"), tuple(endpoints)))
    return rules, sorted(services)


class ServiceProxy:
    """Reprograms NAT when the rules change; calls ``on_hosts_changed`` when the set of Services does."""

    def __init__(self, client: KubeClient, on_hosts_changed: Callable[[], None]) -> None:
        self.client = client
        self.on_hosts_changed = on_hosts_changed
        self._services: list[tuple[str, str, str]] = []  # (namespace, name, clusterIP)
        self._rules_text = ""

    def hosts(self, namespace: str) -> list[tuple[str, list[str]]]:
        """``(clusterIP, names)`` for a pod in ``namespace``: short names only for its own namespace."""
        out = []
        for ns, name, ip in self._services:
            names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
            if ns == namespace:
                names.append(name)
            out.append((ip, names))
        return out

    async def sync(self) -> None:
        svcs = (await self.client.get("/api/v1/services"))["items"]
        slices = (await self.client.get("/apis/discovery.k8s.io/v1/endpointslices"))["items"]
        rules, services = service_rules(svcs, slices)
        text = net.render_service_rules(rules)
        if text != self._rules_text:
            await asyncio.to_thread(net.apply_service_rules, rules)
            self._rules_text = text
        if services != self._services:
            self._services = services
            self.on_hosts_changed()
