"""The ConfigMaps and Secrets that containers' environments refer to, fetched before each start."""

from __future__ import annotations

import base64
from typing import Any

from ..kube import KubeApiError, KubeClient

JSON = dict[str, Any]


def env_refs(container: JSON) -> set[tuple[str, str]]:
    """``(configmaps|secrets, name)`` for every source a container's ``env`` and ``envFrom`` name."""
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
    return refs


class PodEnvironment:
    """Data of the ConfigMaps and Secrets containers' env refer to, as last fetched (Secrets decoded);
    shared by the node's pods."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._data: dict[tuple[str, str, str], dict[str, str]] = {}  # (kind, namespace, name) -> data

    async def refresh(self, namespace: str, container: JSON) -> None:
        """Fetch the ConfigMaps and Secrets a container's env refers to."""
        for kind, name in env_refs(container):
            key = (kind, namespace, name)
            try:
                obj = await self.client.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
            except KubeApiError as exc:
                if exc.status == 404:
                    self._data.pop(key, None)
                    continue
                raise
            raw = obj.get("data") or {}
            if kind == "secrets":
                self._data[key] = {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}
            else:
                self._data[key] = dict(raw)

    def data(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        """``kind``: ``configmaps`` or ``secrets``; None when it was not found."""
        return self._data.get((kind, namespace, name))
