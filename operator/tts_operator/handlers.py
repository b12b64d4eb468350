"""Kopf handlers. Short by design: parse the spec, build desired objects, apply, report status."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError
from tts_crds import names
from tts_crds.models import TtsDeploymentSpec

from . import children
from .settings import OperatorSettings
from .status import deployment_status

log = logging.getLogger("tts_operator")
FIELD_MANAGER = names.MANAGER


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # keep Kopf's bookkeeping in annotations under our group, not in .status
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 120
    settings.networking.request_timeout = 30
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    memo.api = client.ApiClient()
    memo.settings = OperatorSettings()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.api.close()


def _body(exc: ApiException) -> str:
    body = exc.body
    return body.decode(errors="replace") if isinstance(body, bytes) else str(body)


def _parse_spec(body: kopf.Body) -> TtsDeploymentSpec:
    try:
        return TtsDeploymentSpec.model_validate(dict(body.get("spec", {})))
    except ValidationError as exc:
        # the CRD schema rejects most of this earlier; this covers anything it cannot express
        raise kopf.PermanentError(f"invalid spec: {exc.errors()[0]['msg']}") from exc


async def _apply(api: client.ApiClient, obj: dict) -> dict:
    apps = client.AppsV1Api(api)
    meta = obj["metadata"]
    result = await apps.patch_namespaced_deployment(
        meta["name"],
        meta["namespace"],
        obj,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",  # server-side apply
    )  # type: ignore[call-arg]
    applied: dict = api.sanitize_for_serialization(result)
    return applied


@kopf.on.resume(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
async def reconcile_deployment(
    body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, logger: kopf.Logger, **_: Any
) -> None:
    spec = _parse_spec(body)
    desired = children.deployment(dict(body), spec, memo.settings)
    try:
        child = await _apply(memo.api, desired)
    except ApiException as exc:
        if exc.status in (400, 403, 422):
            raise kopf.PermanentError(f"cannot apply Deployment: {exc.reason}: {_body(exc)}") from exc
        raise kopf.TemporaryError(f"cannot apply Deployment ({exc.status} {exc.reason})", delay=5) from exc
    logger.info("applied Deployment %s (replicas=%d)", desired["metadata"]["name"], spec.replicas)
    patch.status.update(deployment_status(dict(body), child))


@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_MANAGED_BY: names.MANAGER})
async def child_deployment_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Mirror the child Deployment's progress into the owner's status."""
    owner_ref = next(
        (r for r in body.metadata.get("ownerReferences", []) if r.get("kind") == names.DEPLOYMENT_KIND), None
    )
    if owner_ref is None:
        return
    ns = str(body.metadata.namespace)
    objects = client.CustomObjectsApi(memo.api)
    try:
        owner = await objects.get_namespaced_custom_object(
            names.GROUP, names.VERSION, ns, names.DEPLOYMENT_PLURAL, owner_ref["name"]
        )
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    if owner["metadata"]["uid"] != owner_ref["uid"]:
        return
    child = None if type == "DELETED" else dict(body)
    status = deployment_status(owner, child)
    current = owner.get("status") or {}
    if all(current.get(k) == v for k, v in status.items()):
        return  # nothing changed
    await objects.patch_namespaced_custom_object_status(
        names.GROUP,
        names.VERSION,
        ns,
        names.DEPLOYMENT_PLURAL,
        owner_ref["name"],
        {"status": status},
        _content_type="application/merge-patch+json",
    )  # type: ignore[call-arg]
