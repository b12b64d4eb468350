"""The provisioner's pure decisions: which claims are ours, the PersistentVolume for a claim,
which volumes to reclaim, and the objects it installs (StorageClass, RBAC). No I/O here, so the
unit tests cover it without a cluster."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

PROVISIONER = "kubetts.io/local-hostpath"
STORAGE_CLASS = "kube-tts-local"
USER = "kube-tts:volume-provisioner"
# set by kube-controller-manager's binder on claims it leaves to an external provisioner
PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
SUPPORTED_ACCESS_MODES = {"ReadWriteOnce", "ReadWriteOncePod", "ReadOnlyMany", "ReadWriteMany"}
_PV_NAME = re.compile(r"^pvc-[0-9a-f-]{36}$")


class ClaimError(ValueError):
    """A claim this provisioner cannot satisfy; the message becomes its ProvisioningFailed event."""


def is_ours(pvc: JSON) -> bool:
    """A claim of our class (or one the binder handed to our provisioner name)."""
    meta = pvc.get("metadata", {})
    annotations = meta.get("annotations") or {}
    if any(annotations.get(a) == PROVISIONER for a in PROVISIONER_ANNOTATIONS):
        return True
    return (pvc.get("spec") or {}).get("storageClassName") == STORAGE_CLASS


def needs_volume(pvc: JSON) -> bool:
    """Ours, still Pending, not bound to a volume, and not being deleted."""
    meta = pvc.get("metadata", {})
    return (
        is_ours(pvc)
        and not meta.get("deletionTimestamp")
        and not (pvc.get("spec") or {}).get("volumeName")
        and (pvc.get("status") or {}).get("phase", "Pending") == "Pending"
    )


def pv_name(pvc: JSON) -> str:
    """``pvc-<claim uid>``, the name the external-provisioner library gives its volumes: unique, and
    stable, so a provisioner that restarts mid-way finds (409) the volume it already created."""
    return f"pvc-{pvc['metadata']['uid']}"


def volume_dir(root: Path, name: str) -> Path:
    """The directory backing volume ``name``; refuses names that could point outside ``root``."""
    if not _PV_NAME.match(name):
        raise ClaimError(f"persistentvolume name {name!r} is not one this provisioner makes")
    return root / name


def persistent_volume(pvc: JSON, root: Path, reclaim_policy: str = "Delete") -> JSON:
    """The hostPath PersistentVolume for ``pvc``, pre-bound to it through ``claimRef`` (as the
    external-provisioner library does), so the binder cannot hand it to another claim."""
    meta, spec = pvc["metadata"], pvc.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if not storage:
        raise ClaimError("spec.resources.requests.storage is required")
    modes = spec.get("accessModes") or []
    if not modes:
        raise ClaimError("spec.accessModes must name at least one access mode")
    unknown = sorted(set(modes) - SUPPORTED_ACCESS_MODES)
    if unknown:
        raise ClaimError(f"spec.accessModes: unsupported {unknown}")
    if spec.get("volumeMode", "Filesystem") != "Filesystem":
        raise ClaimError("spec.volumeMode: only Filesystem volumes (directories) can be provisioned")
    if spec.get("selector"):
        raise ClaimError("spec.selector: a dynamically provisioned claim cannot select volumes")
    name = pv_name(pvc)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": list(modes),
            "volumeMode": "Filesystem",
            "persistentVolumeReclaimPolicy": reclaim_policy,
            "storageClassName": spec.get("storageClassName") or STORAGE_CLASS,
            "hostPath": {"path": str(volume_dir(root, name)), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def is_reclaimable(pv: JSON) -> bool:
    """One of our volumes whose claim is gone (Released) and whose policy says Delete."""
    meta, spec = pv.get("metadata", {}), pv.get("spec") or {}
    return (
        (meta.get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
        and spec.get("persistentVolumeReclaimPolicy") == "Delete"
        and (pv.get("status") or {}).get("phase") in ("Released", "Failed")
        and not meta.get("deletionTimestamp")
    )


def event(pvc: JSON, reason: str, message: str, warning: bool = False) -> JSON:
    """A core/v1 Event on the claim, as the external provisioner records them."""
    meta = pvc["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": f"{PROVISIONER}_devcluster"},
        "reportingComponent": PROVISIONER,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def cluster_objects() -> list[JSON]:
    """The default StorageClass and the provisioner's least-privilege RBAC (what a provisioner's
    Helm chart installs on a real cluster)."""
    return [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": USER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "delete"],
                },
                {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": USER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
        },
    ]
