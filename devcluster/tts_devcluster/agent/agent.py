"""The node agent: watches pods bound to kwok nodes and runs them (the kubelet's part; one
:class:`~.worker.PodWorker` per pod), and wires the rest: service NAT and /etc/hosts
(services.py, kube-proxy's part), pod firewalls (policy.py, a CNI policy agent's part) and
``kubectl logs`` (logs.py, the kubelet API)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from tts_crds import objects

from .. import net
from ..kube import KubeApiError, KubeClient, informer
from ..layout import BRIDGE_IP, KUBELET_PORT, KUBERNETES_SERVICE_IP
from .allocation import GpuAllocator, Ipam, NodeInfo
from .context import ProcessMode, Sandbox
from .envsources import PodEnvironment
from .images import ImageStore
from .logs import LogServer, kubelet_ssl
from .podspec import DEFAULT_PATH
from .policy import PolicyAgent
from .runtime import Runc, runc_root, unmount_below
from .services import ServiceProxy
from .worker import PodWorker

log = logging.getLogger("node-agent")
JSON = dict[str, Any]

FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


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
        self.images = ImageStore(runtime.images_dir)
        self.runc = Runc(runtime.runc, runc_root(state_dir))
        self.process_mode = ProcessMode(
            runtime.process_images, sys.executable, ":".join([*path_dirs, DEFAULT_PATH]), tuple(expose)
        )
        self.env = PodEnvironment(client)
        self.kubernetes_service = (KUBERNETES_SERVICE_IP, 443)
        self.nodes: dict[str, NodeInfo] = {}
        self.workers: dict[str, PodWorker] = {}
        self.services = ServiceProxy(client, self._refresh_hosts)
        self.policies = PolicyAgent(client, self.workers)
        self.sandbox = Sandbox(Ipam(), GpuAllocator(), self.policies.sync, self.services.hosts)
        self._http: aiohttp.ClientSession | None = None
        self.synced = asyncio.Event()  # the first pod list has been handled

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
        involved: JSON = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        body = objects.event(involved, reason, message, "kubelet", warning, host=pod["spec"].get("nodeName"))
        try:
            await self.client.post(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except (KubeApiError, aiohttp.ClientError, OSError) as exc:
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
            with contextlib.suppress(KubeApiError):
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

    # --- network: kube-proxy and the policy agent --------------------------------------------

    async def network_loop(self) -> None:
        """Poll Services, EndpointSlices and NetworkPolicies; reprogram NAT, hosts files and pod
        firewalls when they change (kube-proxy's and a CNI's policy agent's jobs, in one loop)."""
        while True:
            try:
                await self.services.sync()
                await self.policies.sync()
            except (KubeApiError, aiohttp.ClientError, OSError, net.NetError) as exc:
                log.warning("network sync failed: %s", exc)
            await asyncio.sleep(1.0)

    def _refresh_hosts(self) -> None:
        for w in self.workers.values():
            w.refresh_hosts()

    async def token_loop(self) -> None:
        while True:
            await asyncio.sleep(30)
            for w in list(self.workers.values()):
                await w.refresh_tokens()

    async def _healthz_synced(self, _request: web.Request) -> web.Response:
        if not self.synced.is_set():
            return web.Response(status=503, text="syncing pods")
        return web.Response(text="ok")

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
            (LogServer(self.workers).app(), BRIDGE_IP, KUBELET_PORT, kubelet_ssl(self.pki_dir)),
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
