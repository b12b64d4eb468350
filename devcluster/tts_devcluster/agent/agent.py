"""The node agent: watches pods bound to kwok nodes and runs them; serves ``kubectl logs``;
programs service NAT and pod /etc/hosts from Services and EndpointSlices."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import ipaddress
import logging
import os
import shutil
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .. import net
from ..kube import ApiError, KubeClient, informer
from ..layout import BRIDGE_IP, CLUSTER_DOMAIN, KUBELET_PORT, KUBERNETES_SERVICE_IP
from . import netpol
from .images import ImageStore
from .podspec import DEFAULT_PATH
from .runtime import Runc, runc_root, unmount_below
from .worker import PodWorker, now_iso

log = logging.getLogger("node-agent")
JSON = dict[str, Any]

FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


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


@dataclass(frozen=True)
class RuntimeSettings:
    """How the agent runs containers: from images with runc (the default), or, for the images
    named in ``process_images`` (shell patterns), as processes from the checkout (ADR 0040)."""

    images_dir: Path
    runc: str
    process_images: tuple[str, ...] = ()


class NodeAgent:
    def __init__(
        self,
        client: KubeClient,
        state_dir: Path,
        pki_dir: Path,
        path_dirs: list[str],
        expose: list[str],
        runtime: RuntimeSettings,
    ) -> None:
        self.client = client
        self.state_dir = state_dir
        self.pki_dir = pki_dir
        self.python = sys.executable
        self.path_env = ":".join([*path_dirs, DEFAULT_PATH])
        self.expose_paths = expose
        self.images = ImageStore(runtime.images_dir)
        self.runc = Runc(runtime.runc, runc_root(state_dir))
        self.process_images = runtime.process_images
        self.ipam = Ipam()
        self.gpus = GpuAllocator()
        self.kubernetes_service = (KUBERNETES_SERVICE_IP, 443)
        self.nodes: dict[str, NodeInfo] = {}
        self.workers: dict[str, PodWorker] = {}
        self.env_cache: dict[tuple[str, str, str], dict[str, str]] = {}
        self._services: list[tuple[str, str, str]] = []  # (namespace, name, clusterIP)
        self._rules_text = ""
        self._http: aiohttp.ClientSession | None = None
        self.synced = asyncio.Event()  # the first pod list has been handled
        self._policy_lock = asyncio.Lock()

    def runs_as_process(self, image: str) -> bool:
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self.process_images)

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, force_close=True))
        return self._http

    # --- events ----------------------------------------------------------------------------

    async def event(
        self, pod: JSON, reason: str, message: str, warning: bool = False, container: str | None = None
    ) -> None:
        meta = pod["metadata"]
        node = pod["spec"].get("nodeName", "")
        involved: JSON = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        ts = now_iso()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet",
            "reportingInstance": node,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        try:
            await self.client.post(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except (ApiError, aiohttp.ClientError, OSError) as exc:
            log.debug("event %s for %s not recorded: %s", reason, meta["name"], exc)
        if warning:
            log.info("pod %s/%s: %s: %s", meta["namespace"], meta["name"], reason, message)

    # --- nodes -----------------------------------------------------------------------------

    async def refresh_nodes(self) -> None:
        listing = await self.client.get("/api/v1/nodes")
        nodes = {}
        for item in listing["items"]:
            meta = item["metadata"]
            if meta.get("annotations", {}).get(FAKE_NODE_ANNOTATION[0]) != FAKE_NODE_ANNOTATION[1]:
                continue
            cidr = item["spec"].get("podCIDR")
            if not cidr:
                log.warning("node %s has no spec.podCIDR; its pods cannot get addresses", meta["name"])
                continue
            capacity = item.get("status", {}).get("capacity", {})
            nodes[meta["name"]] = NodeInfo(meta["name"], BRIDGE_IP, cidr, int(capacity.get("nvidia.com/gpu", "0")))
        self.nodes = nodes

    async def node_of(self, pod: JSON) -> NodeInfo | None:
        name = pod["spec"].get("nodeName")
        if not name:
            return None
        if name not in self.nodes:
            await self.refresh_nodes()
        return self.nodes.get(name)

    # --- pods ------------------------------------------------------------------------------

    async def on_pod(self, kind: str, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker:
                self.workers.pop(uid, None)
                await worker.stop_now()
            return
        if worker:
            worker.update(pod)
            return
        node = await self.node_of(pod)
        if node is None:
            return
        phase = pod.get("status", {}).get("phase")
        if pod["metadata"].get("deletionTimestamp"):
            # nothing runs for it here (e.g. deleted while the agent was down): finish the deletion
            with contextlib.suppress(ApiError):
                await self.client.delete(
                    f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}",
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                )
            return
        if phase in ("Succeeded", "Failed"):
            return
        worker = PodWorker(self, pod, node)
        self.workers[uid] = worker
        log.info("pod %s/%s assigned to %s: starting", pod["metadata"]["namespace"], pod["metadata"]["name"], node.name)
        worker.start()

    async def on_pod_sync(self, pods: list[JSON]) -> None:
        """A (re-)list: start or update every listed pod, stop those that are gone."""
        present = {p["metadata"]["uid"] for p in pods}
        for uid in [u for u in self.workers if u not in present]:
            worker = self.workers.pop(uid)
            await worker.stop_now()
        for pod in pods:
            await self.on_pod("SYNC", pod)
        self.synced.set()

    async def reap_loop(self) -> None:
        while True:
            await asyncio.sleep(1)
            for uid in [u for u, w in self.workers.items() if w.done]:
                self.workers.pop(uid, None)

    async def image_gc_loop(self, every: float = 600.0) -> None:
        """Delete unpacked images that no container here uses and none used for an hour."""
        while True:
            await asyncio.sleep(every)
            in_use = {
                c.image.digest
                for w in self.workers.values()
                for c in w.init_containers + w.containers
                if c.image is not None
            }
            removed = await asyncio.to_thread(self.images.prune, in_use)
            if removed:
                log.info("removed %d unused unpacked image(s)", len(removed))

    async def refresh_env_cache(self, namespace: str, container: JSON) -> None:
        """Fetch the ConfigMaps and Secrets a container's env refers to."""
        refs: set[tuple[str, str]] = set()
        for src in container.get("envFrom", []) or []:
            if "configMapRef" in src:
                refs.add(("configmaps", src["configMapRef"]["name"]))
            if "secretRef" in src:
                refs.add(("secrets", src["secretRef"]["name"]))
        for var in container.get("env", []) or []:
            vf = var.get("valueFrom") or {}
            if "configMapKeyRef" in vf:
                refs.add(("configmaps", vf["configMapKeyRef"]["name"]))
            if "secretKeyRef" in vf:
                refs.add(("secrets", vf["secretKeyRef"]["name"]))
        for kind, name in refs:
            key = (kind, namespace, name)
            try:
                obj = await self.client.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
            except ApiError as exc:
                if exc.status == 404:
                    self.env_cache.pop(key, None)
                    continue
                raise
            raw = obj.get("data") or {}
            if kind == "secrets":
                self.env_cache[key] = {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}
            else:
                self.env_cache[key] = dict(raw)

    # --- services --------------------------------------------------------------------------

    def service_hosts(self, namespace: str) -> list[tuple[str, list[str]]]:
        out = []
        for ns, name, ip in self._services:
            names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
            if ns == namespace:
                names.append(name)
            out.append((ip, names))
        return out

    async def network_loop(self) -> None:
        """Poll Services, EndpointSlices and NetworkPolicies; reprogram NAT, hosts files and pod
        firewalls when they change (kube-proxy's and a CNI's policy agent's jobs, in one loop)."""
        while True:
            try:
                await self._sync_services()
                await self.sync_policies()
            except (ApiError, aiohttp.ClientError, OSError, net.NetError) as exc:
                log.warning("network sync failed: %s", exc)
            await asyncio.sleep(1.0)

    async def sync_policies(self) -> None:
        """Program every pod's firewall now. Pods call this once they have an address and before
        their containers start, so a new pod is both isolated and admitted by its peers' policies
        from its first packet (a CNI does the same before the pod runs)."""
        async with self._policy_lock:
            await self._sync_policies()

    async def _sync_policies(self) -> None:
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

    async def _sync_services(self) -> None:
        svcs = (await self.client.get("/api/v1/services"))["items"]
        slices = (await self.client.get("/apis/discovery.k8s.io/v1/endpointslices"))["items"]
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
        text = net.render_service_rules(rules)
        if text != self._rules_text:
            await asyncio.to_thread(net.apply_service_rules, rules)
            self._rules_text = text
        services.sort()
        if services != self._services:
            self._services = services
            for w in self.workers.values():
                w.refresh_hosts()

    async def token_loop(self) -> None:
        while True:
            await asyncio.sleep(30)
            for w in list(self.workers.values()):
                await w.refresh_tokens()

    # --- kubelet API (kubectl logs) ----------------------------------------------------------

    def _find(self, ns: str, pod: str) -> PodWorker | None:
        return next((w for w in self.workers.values() if w.ns == ns and w.name == pod), None)

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        worker = self._find(ns, pod)
        if worker is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{pod} is not running on this node\n")
        c = next((c for c in worker.init_containers + worker.containers if c.name == container), None)
        if c is None:
            raise web.HTTPNotFound(text=f"container {container} is not valid for pod {pod}\n")
        q = request.query
        previous = q.get("previous") == "true"
        index = c.restart_count - 1 if previous else c.restart_count
        if previous and index < 0:
            raise web.HTTPBadRequest(text=f'previous terminated container "{container}" in pod "{pod}" not found\n')
        path = worker.dir / "logs" / container / f"{index}.log"
        # a container waiting for its restart has no new log yet: show the last one
        if not path.exists() and not previous and index > 0:
            path = worker.dir / "logs" / container / f"{index - 1}.log"
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        if not path.exists():
            await resp.write_eof()
            return resp
        data = path.read_bytes()
        if "tailLines" in q:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(q["tailLines"]) :]) if int(q["tailLines"]) > 0 else b""
        if "limitBytes" in q:
            data = data[: int(q["limitBytes"])]
        await resp.write(data)
        if q.get("follow") == "true" and not previous:
            offset = path.stat().st_size
            while not worker.done and c.restart_count == index:
                await asyncio.sleep(0.25)
                size = path.stat().st_size if path.exists() else offset
                if size > offset:
                    with open(path, "rb") as fh:
                        fh.seek(offset)
                        chunk = fh.read(size - offset)
                    offset = size
                    await resp.write(chunk)
                elif c.proc is None:
                    break
        await resp.write_eof()
        return resp

    async def _healthz_synced(self, _request: web.Request) -> web.Response:
        if not self.synced.is_set():
            return web.Response(status=503, text="syncing pods")
        return web.Response(text="ok")

    def kubelet_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        app.router.add_get("/healthz", _healthz)
        return app

    def kubelet_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(self.pki_dir / "node-agent-serving.crt"), str(self.pki_dir / "node-agent-serving.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED  # only the apiserver's kubelet-client certificate gets in
        return ctx

    # --- lifecycle -------------------------------------------------------------------------

    def cleanup_stale(self) -> None:
        """Kill processes and namespaces a previous agent left behind (it was killed hard)."""
        self.runc.cleanup_all()
        if self.state_dir.exists():
            for pidfile in self.state_dir.glob("*/pids/*"):
                with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, OSError):
                    os.killpg(int(pidfile.read_text()), signal.SIGKILL)
            unmount_below(self.state_dir)
            for child in self.state_dir.iterdir():
                shutil.rmtree(child, ignore_errors=True)
        for ns in net.list_netns():
            net.delete_pod_netns(ns)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    async def run(self, health_port: int) -> None:
        self.cleanup_stale()
        await self.refresh_nodes()
        health = web.Application()
        health.router.add_get("/healthz", self._healthz_synced)
        runners = []
        for app, host, port, ctx in (
            (health, "127.0.0.1", health_port, None),
            (self.kubelet_app(), BRIDGE_IP, KUBELET_PORT, self.kubelet_ssl()),
        ):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, port, ssl_context=ctx).start()
            runners.append(runner)
        log.info("node agent serving %d node(s): %s", len(self.nodes), ", ".join(sorted(self.nodes)))
        tasks = [
            asyncio.create_task(
                informer(
                    self.client,
                    "/api/v1/pods",
                    self.on_pod,
                    params={"fieldSelector": "spec.nodeName!="},
                    on_sync=self.on_pod_sync,
                )
            ),
            asyncio.create_task(self.network_loop()),
            asyncio.create_task(self.token_loop()),
            asyncio.create_task(self.reap_loop()),
            asyncio.create_task(self.image_gc_loop()),
        ]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: stopping %d pod(s)", len(self.workers))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*(w.stop_now() for w in self.workers.values()), return_exceptions=True)
        for runner in runners:
            await runner.cleanup()
        if self._http:
            await self._http.close()
        await self.client.close()


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")
