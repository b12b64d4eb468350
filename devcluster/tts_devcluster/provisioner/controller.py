"""The provisioner's watch loop: a directory and a pre-bound hostPath PV for each new claim of our
class, and on release (reclaim policy Delete) the directory and the PV removed again.

It talks to the real apiserver as its own user (``kube-tts:volume-provisioner``, a client
certificate bound to a ClusterRole that allows PVs, reading claims and classes, and events).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from ..kube import KubeApiError, KubeClient, informer
from . import plan
from .plan import JSON, ClaimError

log = logging.getLogger("volume-provisioner")


class Provisioner:
    def __init__(self, client: KubeClient, root: Path) -> None:
        self.client = client
        self.root = root
        self._lock = asyncio.Lock()  # one claim or volume at a time: a tiny, single-node backend
        # claim uid -> the last failure recorded, so a claim's every update does not repeat the event
        self._failed: dict[str, str] = {}

    async def run(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(
            informer(self.client, "/api/v1/persistentvolumeclaims", self._on_claim, on_sync=self._sync_claims),
            informer(self.client, "/api/v1/persistentvolumes", self._on_volume, on_sync=self._sync_volumes),
        )

    async def _sync_claims(self, claims: list[JSON]) -> None:
        for pvc in claims:
            await self._on_claim("ADDED", pvc)

    async def _sync_volumes(self, volumes: list[JSON]) -> None:
        for pv in volumes:
            await self._on_volume("ADDED", pv)

    async def _on_claim(self, kind: str, pvc: JSON) -> None:
        if kind == "DELETED":
            self._failed.pop(pvc["metadata"].get("uid", ""), None)
            return
        if not plan.needs_volume(pvc):
            return
        async with self._lock:
            await self.provision(pvc)

    async def _on_volume(self, kind: str, pv: JSON) -> None:
        if kind == "DELETED" or not plan.is_reclaimable(pv):
            return
        async with self._lock:
            await self.reclaim(pv)

    async def _reclaim_policy(self, pvc: JSON) -> str | None:
        """The class's reclaim policy, or None when the claim's class belongs to another provisioner."""
        name = (pvc.get("spec") or {}).get("storageClassName") or plan.STORAGE_CLASS
        try:
            sc = await self.client.get(f"/apis/storage.k8s.io/v1/storageclasses/{name}")
        except KubeApiError as exc:
            if exc.status == 404:
                raise ClaimError(f"storageclass {name!r} not found") from exc
            raise
        if sc.get("provisioner") != plan.PROVISIONER:
            return None
        return str(sc.get("reclaimPolicy") or "Delete")

    async def provision(self, pvc: JSON) -> None:
        meta = pvc["metadata"]
        who = f"{meta['namespace']}/{meta['name']}"
        try:
            policy = await self._reclaim_policy(pvc)
            if policy is None:
                return
            pv = plan.persistent_volume(pvc, self.root, policy)
        except ClaimError as exc:
            await self._failure(pvc, f"failed to provision volume: {exc}")
            return
        path = Path(pv["spec"]["hostPath"]["path"])
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o777)  # pods run as arbitrary non-root uids (65532 for ours); mkdir's mode obeys umask
        try:
            await self.client.post("/api/v1/persistentvolumes", pv)
        except KubeApiError as exc:
            if exc.status == 409:  # made already (an earlier update of the claim, or before a restart)
                return
            await self._failure(pvc, f"failed to create volume {pv['metadata']['name']}: {exc}")
            return
        self._failed.pop(meta["uid"], None)
        log.info("provisioned %s for %s at %s", pv["metadata"]["name"], who, path)
        await self._event(pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {pv['metadata']['name']}")

    async def _failure(self, pvc: JSON, message: str) -> None:
        meta = pvc["metadata"]
        if self._failed.get(meta["uid"]) == message:
            return
        self._failed[meta["uid"]] = message
        log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
        await self._event(pvc, "ProvisioningFailed", message, warning=True)

    async def reclaim(self, pv: JSON) -> None:
        name = pv["metadata"]["name"]
        try:
            path = plan.volume_dir(self.root, name)
        except ClaimError as exc:
            log.warning("not reclaiming %s: %s", name, exc)
            return
        # only a directory this provisioner made, under its root, is ever removed
        if Path(pv["spec"].get("hostPath", {}).get("path", "")) != path:
            log.warning("not reclaiming %s: its path is not %s", name, path)
            return
        await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
        try:
            await self.client.delete(f"/api/v1/persistentvolumes/{name}")
        except KubeApiError as exc:
            if exc.status != 404:
                log.warning("deleting %s failed: %s", name, exc)
                return
        log.info("reclaimed %s (removed %s)", name, path)

    async def _event(self, pvc: JSON, reason: str, message: str, warning: bool = False) -> None:
        try:
            await self.client.post(
                f"/api/v1/namespaces/{pvc['metadata']['namespace']}/events", plan.event(pvc, reason, message, warning)
            )
        except KubeApiError as exc:  # an event is best effort, as in client-go's recorder
            log.warning("recording %s failed: %s", reason, exc)
