"""TtsDeployment status refresh: read the child Deployment and pods, patch status, announce changes.

One place computes status (``refresh_status``), debounced per TtsDeployment, and anything that can
change it schedules a run: a reconcile, an event on a child Deployment/Service/PDB, an event on one
of its pods.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from tts_crds import names
from tts_crds.models import Capability, InvalidSpec, capability_of

from . import kube
from .children import deployment_spec
from .runtime import Key, Runtime, runtime_of
from .status import aliases_verdict, changed, condition_of, deployment_status, ready_pod_ip, rivals, with_aliases

log = logging.getLogger("tts_operator")

POD_LABELS = {names.LABEL_COMPONENT: names.COMPONENT_INFERENCE, names.LABEL_MANAGED_BY: names.MANAGER}


def owner_of(body: kopf.Body) -> Key | None:
    """The TtsDeployment a child or pod belongs to, by its label."""
    owner = (body.metadata.labels or {}).get(names.LABEL_DEPLOYMENT)
    return (str(body.metadata.namespace), owner) if owner else None


@kopf.on.event("", "v1", "pods", labels=POD_LABELS)
async def pod_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = owner_of(body)
    if key is not None:
        runtime_of(memo).refresher.schedule(key)


async def refresh_status(rt: Runtime, namespace: str, name: str) -> None:
    k = rt.kube
    owner = await k.get_tts_deployment(namespace, name)
    if owner is None or owner["metadata"].get("deletionTimestamp"):
        return
    try:
        gpu_resource = deployment_spec(owner).resources.gpu_resource_name
    except InvalidSpec:
        gpu_resource = names.DEFAULT_GPU_RESOURCE
    child = await k.get_deployment(namespace, names.child_name(name))
    pods = await k.list_pods(namespace, names.selector_string(names.inference_selector(name)))
    current = owner.get("status") or {}
    # until this process has applied the spec, report what the last status said was observed
    observed = rt.reconciled.get((namespace, name), current.get("observedGeneration"))
    blocked = rt.blocked.get((namespace, name))
    new = deployment_status(owner, child, pods, gpu_resource, observed_generation=observed, blocked=blocked)
    neighbours = await k.list_tts_deployments(namespace)
    with_aliases(new, aliases_verdict(name, neighbours), new.observed_generation)
    speaks = capability_of(str((owner.get("spec") or {}).get("engine") or "")) == Capability.SPEECH
    if (
        speaks
        and (new.ready_replicas or 0) > 0
        and (current.get("speakers") is None or current.get("observedGeneration") != new.observed_generation)
    ):
        ready_ip = ready_pod_ip(pods)
        if ready_ip:
            speakers = await kube.engine_speakers(rt.http, ready_ip)
            if speakers is not None:
                new.speakers = speakers
    patch = new.patch()
    if not changed(current, patch):
        return
    await k.patch_status(names.DEPLOYMENT_PLURAL, namespace, name, patch)
    await announce(rt, owner, current, patch)
    for other in rivals(name, neighbours):  # their Aliases condition may have changed with this claim
        rt.refresher.schedule((namespace, other))


async def announce(rt: Runtime, owner: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    """Kubernetes Events when a TtsDeployment becomes degraded or recovers, or loses an alias claim."""
    lost = condition_of({"status": after}, "Aliases") or {}
    had = condition_of({"status": before}, "Aliases") or {}
    if lost.get("status") == "False" and (had.get("status") != "False" or had.get("message") != lost.get("message")):
        await rt.kube.event(owner, lost["reason"], lost["message"], warning=True)
    old = condition_of({"status": before}, "Degraded") or {}
    new = condition_of({"status": after}, "Degraded") or {}
    if new.get("status") == "True" and (old.get("status") != "True" or old.get("reason") != new.get("reason")):
        await rt.kube.event(owner, new["reason"], new["message"], warning=True)
    elif old.get("status") == "True" and new.get("status") != "True":
        await rt.kube.event(owner, "Recovered", f"no longer {old.get('reason')}")
