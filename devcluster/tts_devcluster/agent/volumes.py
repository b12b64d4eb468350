"""Materialise a pod's volumes in its sandbox directory, as the kubelet's volume plugins do.

Supported: emptyDir, configMap, secret, downwardAPI, projected (serviceAccountToken, configMap,
secret, downwardAPI), hostPath, and persistentVolumeClaim bound to a hostPath or local
PersistentVolume. Anything else fails the pod with a message naming the volume.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..kube import KubeApiError, KubeClient
from .podspec import field_value

JSON = dict[str, Any]


class VolumeError(RuntimeError):
    pass


@dataclass
class TokenFile:
    """A projected service-account token that must be refreshed before it expires."""

    path: Path
    audience: str | None
    expiration: int
    mode: int
    refresh_at: float = 0.0


@dataclass
class Volumes:
    paths: dict[str, Path] = field(default_factory=dict)
    tokens: list[TokenFile] = field(default_factory=list)


def _write(path: Path, data: bytes, mode: int, gid: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    if gid is not None:
        os.chown(tmp, -1, gid)
    os.replace(tmp, path)


def _project_items(
    data: dict[str, bytes], items: list[JSON] | None, default_mode: int, optional: bool, what: str
) -> list[tuple[str, bytes, int]]:
    if items:
        out = []
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise VolumeError(f"{what} has no key {item['key']!r}")
            out.append((item["path"], data[item["key"]], item.get("mode", default_mode)))
        return out
    return [(k, v, default_mode) for k, v in data.items()]


class VolumeBuilder:
    def __init__(self, client: KubeClient, pod: JSON, root: Path, pod_ip: str, node_ip: str) -> None:
        self.client = client
        self.pod = pod
        self.root = root
        self.pod_ip = pod_ip
        self.node_ip = node_ip
        self.ns = pod["metadata"]["namespace"]
        psc = pod["spec"].get("securityContext") or {}
        self.fs_group: int | None = psc.get("fsGroup")

    async def build(self) -> Volumes:
        out = Volumes()
        for vol in self.pod["spec"].get("volumes", []) or []:
            name = vol["name"]
            target = self.root / name
            target.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in vol:
                os.chmod(target, 0o777)
            elif "configMap" in vol:
                await self._config_map(vol["configMap"], target, 0o644)
            elif "secret" in vol:
                await self._secret(vol["secret"], target, 0o644)
            elif "downwardAPI" in vol:
                self._downward(
                    vol["downwardAPI"].get("items", []), target, vol["downwardAPI"].get("defaultMode", 0o644)
                )
            elif "projected" in vol:
                await self._projected(vol["projected"], target, out)
            elif "hostPath" in vol:
                target = await self._host_path(vol["hostPath"])
            elif "persistentVolumeClaim" in vol:
                target = await self._pvc(vol["persistentVolumeClaim"]["claimName"])
            else:
                kind = next((k for k in vol if k != "name"), "?")
                raise VolumeError(f"volume {name}: type {kind} is not supported by the devcluster node agent")
            out.paths[name] = target
        return out

    async def _get(self, path: str, optional: bool, what: str) -> JSON | None:
        try:
            return await self.client.get(path)
        except KubeApiError as exc:
            if exc.status == 404:
                if optional:
                    return None
                raise VolumeError(f"{what} not found") from exc
            raise

    async def _config_map_data(self, name: str, optional: bool) -> dict[str, bytes] | None:
        cm = await self._get(f"/api/v1/namespaces/{self.ns}/configmaps/{name}", optional, f"configmap {name!r}")
        if cm is None:
            return None
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    async def _secret_data(self, name: str, optional: bool) -> dict[str, bytes] | None:
        sec = await self._get(f"/api/v1/namespaces/{self.ns}/secrets/{name}", optional, f"secret {name!r}")
        if sec is None:
            return None
        return {k: base64.b64decode(v) for k, v in (sec.get("data") or {}).items()}

    async def _config_map(self, src: JSON, target: Path, mode: int) -> None:
        optional = bool(src.get("optional"))
        data = await self._config_map_data(src["name"], optional)
        default = src.get("defaultMode", mode)
        for rel, blob, m in _project_items(
            data or {}, src.get("items"), default, optional, f"configmap {src['name']!r}"
        ):
            _write(target / rel, blob, m, self.fs_group)

    async def _secret(self, src: JSON, target: Path, mode: int) -> None:
        optional = bool(src.get("optional"))
        name = str(src.get("secretName") or src.get("name"))
        data = await self._secret_data(name, optional)
        default = src.get("defaultMode", mode)
        for rel, blob, m in _project_items(data or {}, src.get("items"), default, optional, f"secret {name!r}"):
            _write(target / rel, blob, m, self.fs_group)

    def _downward(self, items: list[JSON], target: Path, default_mode: int) -> None:
        for item in items:
            if "fieldRef" in item:
                value = field_value(self.pod, item["fieldRef"]["fieldPath"], self.pod_ip, self.node_ip)
            else:
                raise VolumeError(f"downwardAPI item {item.get('path')}: only fieldRef is supported")
            _write(target / item["path"], value.encode(), item.get("mode", default_mode), self.fs_group)

    async def _projected(self, src: JSON, target: Path, out: Volumes) -> None:
        default = src.get("defaultMode", 0o644)
        for source in src.get("sources", []):
            if "serviceAccountToken" in source:
                t = source["serviceAccountToken"]
                token = TokenFile(
                    path=target / t["path"],
                    audience=t.get("audience"),
                    expiration=int(t.get("expirationSeconds", 3600)),
                    mode=default,
                )
                await self.refresh_token(token)
                out.tokens.append(token)
            elif "configMap" in source:
                await self._config_map(source["configMap"], target, default)
            elif "secret" in source:
                await self._secret(source["secret"], target, default)
            elif "downwardAPI" in source:
                self._downward(source["downwardAPI"].get("items", []), target, default)
            else:
                raise VolumeError(f"projected source {next(iter(source))} is not supported")

    async def refresh_token(self, token: TokenFile) -> None:
        """TokenRequest bound to this pod, exactly as the kubelet asks for one."""
        meta = self.pod["metadata"]
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        spec: JSON = {
            "expirationSeconds": token.expiration,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        }
        if token.audience:
            spec["audiences"] = [token.audience]
        resp = await self.client.post(
            f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        _write(token.path, resp["status"]["token"].encode(), token.mode, self.fs_group)
        # the kubelet refreshes at 80% of the lifetime
        token.refresh_at = time.monotonic() + 0.8 * token.expiration

    async def _host_path(self, src: JSON) -> Path:
        path = Path(src["path"])
        kind = src.get("type", "")
        if kind in ("DirectoryOrCreate",):
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif not path.exists():
            raise VolumeError(f"hostPath {path} does not exist")
        return path

    async def _pvc(self, claim: str) -> Path:
        pvc = await self._get(
            f"/api/v1/namespaces/{self.ns}/persistentvolumeclaims/{claim}", False, f"persistentvolumeclaim {claim!r}"
        )
        assert pvc is not None
        pv_name = pvc.get("spec", {}).get("volumeName")
        if not pv_name or pvc.get("status", {}).get("phase") != "Bound":
            raise VolumeError(f"persistentvolumeclaim {claim!r} is not bound yet")
        pv = await self._get(f"/api/v1/persistentvolumes/{pv_name}", False, f"persistentvolume {pv_name!r}")
        assert pv is not None
        spec = pv.get("spec", {})
        for kind in ("hostPath", "local"):
            if kind in spec:
                path = Path(spec[kind]["path"])
                if not path.exists():
                    raise VolumeError(f"persistentvolume {pv_name}: {path} does not exist on this host")
                return path
        raise VolumeError(f"persistentvolume {pv_name}: only hostPath and local volumes are supported")
