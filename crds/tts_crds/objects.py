"""Small pure helpers over Kubernetes objects as JSON, shared by the components that talk to the API."""

from __future__ import annotations

import base64
from typing import Any

from . import names
from .times import now_iso

JSON = dict[str, Any]


def key_value(obj: JSON, key: str, secret: bool) -> bytes | None:
    """The bytes of ``key`` in a ConfigMap (``binaryData``, else ``data``) or a Secret (``data``,
    base64); None when the key is absent."""
    if secret:
        value = (obj.get("data") or {}).get(key)
        return base64.b64decode(value) if value is not None else None
    binary = obj.get("binaryData") or {}
    if key in binary:
        return base64.b64decode(binary[key])
    text = (obj.get("data") or {}).get(key)
    return str(text).encode() if text is not None else None


def event(
    involved: JSON,
    reason: str,
    message: str,
    component: str,
    warning: bool = False,
    host: str | None = None,
    at: str | None = None,
) -> JSON:
    """A core/v1 Event about ``involved`` (an object reference: apiVersion, kind, namespace, name, uid …)."""
    ts = at or now_iso()
    source: JSON = {"component": component}
    body: JSON = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": source,
        "reportingComponent": component,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }
    if host:
        source["host"] = host
        body["reportingInstance"] = host
    return body


def controller_reference(owner: JSON, kind: str, *, block_owner_deletion: bool = True) -> JSON:
    """``owner`` (a kube-tts resource of ``kind``) as the controller in a child's ownerReferences:
    deleting the owner deletes the child. ``block_owner_deletion`` needs delete rights on the owner
    (the operator has them; the router, which adds an uploaded text's ConfigMap, does not ask)."""
    meta = owner["metadata"]
    return {
        "apiVersion": names.API_VERSION,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": block_owner_deletion,
    }
