"""TtsDeployment reconcile: parse the spec, build the children, apply them; restore edited or deleted children."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names
from tts_crds.models import InvalidSpec, TtsDeploymentSpec

from . import children
from .children import deployment_spec
from .kube import body_text
from .refresh import owner_of, refresh_status
from .runtime import Runtime, key_of, runtime_of

log = logging.getLogger("tts_operator")

CHILD_LABELS = {names.LABEL_MANAGED_BY: names.MANAGER}


async def apply_children(rt: Runtime, owner: dict[str, Any], spec: TtsDeploymentSpec) -> None:
    """Apply every child; afterwards the owner's generation counts as observed."""
    ns, name = key_of(owner)
    desired = [children.deployment(owner, spec, rt.settings), children.service(owner)]
    pdb = children.pod_disruption_budget(owner, spec)
    if pdb:
        desired.append(pdb)
    try:
        for obj in desired:
            applied = await rt.kube.apply(obj)
            rt.applied_generation[(obj["kind"], ns, obj["metadata"]["name"])] = applied["metadata"].get("generation")
        if pdb is None:
            await rt.kube.delete_pdb(ns, names.child_name(name))
        rt.reconciled[(ns, name)] = owner["metadata"].get("generation")
        rt.blocked.pop((ns, name), None)
    except ApiException as exc:
        if exc.status == 403 and "NamespaceTerminating" in body_text(exc):
            return  # the whole namespace is going away: nothing to restore
        if exc.status in (400, 403, 422):
            message = f"cannot apply children: {exc.reason}: {body_text(exc)}"
            await block(rt, ns, name, "ApplyFailed", message)
            raise kopf.PermanentError(message) from exc
        message = f"cannot apply children ({exc.status} {exc.reason}); retrying"
        await block(rt, ns, name, "ApplyFailed", message)
        raise kopf.TemporaryError(message, delay=5) from exc


async def block(rt: Runtime, namespace: str, name: str, reason: str, message: str) -> None:
    """The spec cannot be applied: say so in status (Ready False, Degraded True with ``reason``, which
    posts a Warning event) before the handler raises. Until the next successful apply every status
    refresh keeps saying it."""
    rt.blocked[(namespace, name)] = (reason, message)
    try:
        await refresh_status(rt, namespace, name)
    except ApiException as exc:  # the error being reported matters more than this one
        log.warning("status of %s/%s not updated with %s: %s %s", namespace, name, reason, exc.status, exc.reason)


@kopf.on.resume(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL, field="spec")
async def reconcile_deployment(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    key = key_of(body)
    try:
        spec = deployment_spec(dict(body))
    except InvalidSpec as exc:
        await block(rt, *key, "InvalidSpec", f"invalid spec: {exc}")
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    await apply_children(rt, dict(body), spec)
    log.info("%s/%s: applied children (replicas=%d)", *key, spec.replicas)
    rt.refresher.schedule(key)


@kopf.on.event(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
async def deployment_seen(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime_of(memo)
    rt.cache.update(rt.cache.deployments, type, body)


@kopf.on.delete(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL, optional=True)
async def forget_deployment(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime_of(memo).forget(key_of(body))


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "services", labels=CHILD_LABELS)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=CHILD_LABELS)
async def child_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A child changed: restore it if it was deleted or edited by hand; refresh the status."""
    rt = runtime_of(memo)
    key = owner_of(body)
    if key is None:
        return
    kind = body.get("kind", "")
    ident = (kind, key[0], str(body.metadata.name))
    generation = body.metadata.get("generation")
    drifted = type == "DELETED" or (
        type == "MODIFIED" and (kind == "Service" or generation != rt.applied_generation.get(ident))
    )
    if drifted:
        owner = await rt.kube.get_tts_deployment(*key)
        if owner is not None and not owner["metadata"].get("deletionTimestamp"):
            try:
                spec = deployment_spec(owner)
            except InvalidSpec:
                return
            if kind == "PodDisruptionBudget" and children.pod_disruption_budget(owner, spec) is None:
                return  # we removed it ourselves
            if type == "DELETED":
                log.info("%s %s/%s was deleted; restoring it", kind, key[0], body.metadata.name)
            await apply_children(rt, owner, spec)
    rt.refresher.schedule(key)
