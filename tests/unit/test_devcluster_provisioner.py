"""The volume provisioner's pure decisions (tts_devcluster.provisioner.plan); the watch loop
against a real apiserver is tests/integration/test_volumes.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tts_devcluster.provisioner import plan

UID = "0f8e2b1c-3a4d-4e5f-8a9b-0c1d2e3f4a5b"


def pvc(**spec: Any) -> dict[str, Any]:
    base = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}
    base.update(spec)
    return {
        "metadata": {"name": "jobs", "namespace": "tts", "uid": UID, "annotations": {}},
        "spec": base,
        "status": {"phase": "Pending"},
    }


def test_claims_of_our_class_or_handed_to_our_provisioner_are_ours() -> None:
    assert plan.is_ours(pvc(storageClassName=plan.STORAGE_CLASS))
    handed = pvc(storageClassName="fast")
    handed["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] = plan.PROVISIONER
    assert plan.is_ours(handed)
    assert not plan.is_ours(pvc(storageClassName="fast"))
    assert not plan.is_ours(pvc())  # no class yet: the admission plugin fills in the default first


def test_only_pending_unbound_live_claims_need_a_volume() -> None:
    assert plan.needs_volume(pvc(storageClassName=plan.STORAGE_CLASS))
    assert not plan.needs_volume(pvc(storageClassName=plan.STORAGE_CLASS, volumeName="pv-1"))
    bound = pvc(storageClassName=plan.STORAGE_CLASS)
    bound["status"]["phase"] = "Bound"
    assert not plan.needs_volume(bound)
    deleting = pvc(storageClassName=plan.STORAGE_CLASS)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not plan.needs_volume(deleting)


def test_the_volume_is_a_prebound_hostpath_of_the_requested_size_and_modes(tmp_path: Path) -> None:
    pv = plan.persistent_volume(pvc(storageClassName=plan.STORAGE_CLASS), tmp_path, "Retain")
    assert pv["metadata"]["name"] == f"pvc-{UID}"
    assert pv["metadata"]["annotations"][plan.PROVISIONED_BY] == plan.PROVISIONER
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["hostPath"] == {"path": str(tmp_path / f"pvc-{UID}"), "type": "Directory"}
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "tts",
        "name": "jobs",
        "uid": UID,
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"resources": {}}, "spec.resources.requests.storage"),
        ({"accessModes": []}, "spec.accessModes"),
        ({"accessModes": ["ReadWriteSometimes"]}, "spec.accessModes"),
        ({"volumeMode": "Block"}, "spec.volumeMode"),
        ({"selector": {"matchLabels": {"a": "b"}}}, "spec.selector"),
    ],
)
def test_unsatisfiable_claims_are_refused_naming_the_field(spec: dict[str, Any], field: str, tmp_path: Path) -> None:
    with pytest.raises(plan.ClaimError, match=field.replace(".", r"\.")):
        plan.persistent_volume(pvc(**spec), tmp_path)


def test_volume_dirs_never_leave_the_root(tmp_path: Path) -> None:
    assert plan.volume_dir(tmp_path, f"pvc-{UID}") == tmp_path / f"pvc-{UID}"
    for name in ("../etc", "pvc-../../x", "other", f"pvc-{UID}/.."):
        with pytest.raises(plan.ClaimError):
            plan.volume_dir(tmp_path, name)


def released(policy: str = "Delete", phase: str = "Released", by: str = plan.PROVISIONER) -> dict[str, Any]:
    return {
        "metadata": {"name": f"pvc-{UID}", "annotations": {plan.PROVISIONED_BY: by}},
        "spec": {"persistentVolumeReclaimPolicy": policy},
        "status": {"phase": phase},
    }


def test_only_our_released_delete_volumes_are_reclaimed() -> None:
    assert plan.is_reclaimable(released())
    assert plan.is_reclaimable(released(phase="Failed"))
    assert not plan.is_reclaimable(released(policy="Retain"))
    assert not plan.is_reclaimable(released(phase="Bound"))
    assert not plan.is_reclaimable(released(by="rancher.io/local-path"))


def test_events_name_the_claim_and_the_default_class_is_default_and_immediate() -> None:
    ev = plan.event(pvc(), "ProvisioningFailed", "no", warning=True)
    assert ev["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert ev["involvedObject"]["uid"] == UID
    assert ev["type"] == "Warning" and ev["reason"] == "ProvisioningFailed"
    sc, role, binding = plan.cluster_objects()
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"]) == (
        plan.PROVISIONER,
        "Immediate",
        "Delete",
    )
    # least privilege: never secrets, pods or anything cluster-admin
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"persistentvolumes", "persistentvolumeclaims", "storageclasses", "events"}
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": plan.USER}]
