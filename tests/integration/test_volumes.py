"""The local cluster provisions PersistentVolumeClaims (ADR 0051): a claim of the default class
binds within seconds to a hostPath volume a restricted pod can write, another pod reads what it
wrote, and deleting the claim removes the volume and its directory."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tts_devcluster.layout import REGISTRY
from tts_devcluster.provisioner import plan

from tests.helpers import eventually

from .conftest import Kube

PYTHON = f"{REGISTRY}/library/python:3.11-slim-bookworm"

RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def claim(name: str, size: str = "64Mi", modes: tuple[str, ...] = ("ReadWriteMany",)) -> dict[str, Any]:
    """A claim naming no class: the DefaultStorageClass admission gives it ours."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}},
    }


def restricted_pod(name: str, claim_name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": PYTHON,
                    "command": ["python", "-c", script],
                    "securityContext": RESTRICTED,
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def finished(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    pod = kube.wait_pod(
        namespace, name, lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"), 120, "finished"
    )
    logs = kube.run("logs", name, "-n", namespace, check=False).stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    return {"pod": pod, "logs": logs}


def test_claim_binds_pods_share_it_and_delete_reclaims(kube: Kube, namespace: str) -> None:
    name = f"data-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    kube.apply(claim(name), namespace)
    pvc = eventually(
        lambda: (c := kube.get("pvc", name, namespace)) and c.get("status", {}).get("phase") == "Bound" and c,
        timeout=15,
        what=f"claim {name} Bound",
    )
    bound_s = time.monotonic() - t0
    assert bound_s < 10, f"bound after {bound_s:.1f}s"
    assert pvc["spec"]["storageClassName"] == plan.STORAGE_CLASS
    pv_name = pvc["spec"]["volumeName"]
    assert pv_name == f"pvc-{pvc['metadata']['uid']}"
    pv = kube.get("pv", pv_name)
    assert pv is not None
    assert pv["spec"]["capacity"]["storage"] == "64Mi"
    assert pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    directory = Path(pv["spec"]["hostPath"]["path"])
    assert directory == kube.layout.volumes / pv_name
    assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o777
    reasons = {e["reason"] for e in kube.events(namespace, name)}
    assert "ProvisioningSucceeded" in reasons, reasons

    writer = restricted_pod(
        "writer",
        name,
        "import os; os.makedirs('/data/out', exist_ok=True); open('/data/out/hello.txt', 'w').write('spoken'); "
        "print(os.getuid())",
    )
    kube.apply(writer, namespace)
    assert finished(kube, namespace, "writer")["logs"].strip() == "65532"
    written = directory / "out" / "hello.txt"
    assert written.read_text() == "spoken"
    assert written.stat().st_uid == 65532

    reader = restricted_pod("reader", name, "print(open('/data/out/hello.txt').read())")
    kube.apply(reader, namespace)
    assert finished(kube, namespace, "reader")["logs"].strip() == "spoken"

    kube.run("delete", "pod", "writer", "reader", "-n", namespace, "--wait=true")
    kube.run("delete", "pvc", name, "-n", namespace, "--wait=true")
    eventually(lambda: kube.get("pv", pv_name) is None, timeout=30, what=f"{pv_name} deleted")
    assert not directory.exists()


def test_unsatisfiable_claim_gets_a_provisioning_failed_event(kube: Kube, namespace: str) -> None:
    name = f"block-{uuid.uuid4().hex[:6]}"
    bad = claim(name, modes=("ReadWriteOnce",))
    bad["spec"]["volumeMode"] = "Block"
    kube.apply(bad, namespace)
    failed = eventually(
        lambda: [e for e in kube.events(namespace, name) if e["reason"] == "ProvisioningFailed"] or None,
        timeout=15,
        what="ProvisioningFailed event",
    )
    assert failed[0]["type"] == "Warning"
    assert "spec.volumeMode" in failed[0]["message"]
    claim_now = kube.get("pvc", name, namespace)
    assert claim_now is not None and claim_now["status"]["phase"] == "Pending"


def test_the_provisioner_runs_as_its_own_least_privileged_user(kube: Kube) -> None:
    kubeconfig = str(kube.layout.kubeconfig("volume-provisioner"))
    kubectl = kube.layout.tool("kubectl")

    def can(*args: str) -> str:
        return subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "auth", "can-i", *args], capture_output=True, text=True
        ).stdout.strip()

    assert (
        subprocess.run(
            [kubectl, "--kubeconfig", kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
            capture_output=True,
            text=True,
        ).stdout
        == plan.USER
    )
    assert can("create", "persistentvolumes") == "yes"
    assert can("list", "secrets", "-A") == "no"
    assert can("create", "pods", "-n", "default") == "no"
    assert can("update", "persistentvolumeclaims", "-n", "default") == "no"
