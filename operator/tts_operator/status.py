"""TtsDeployment status computed from its child Deployment (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tts_crds import names

JSON = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(
    conditions: list[JSON], ctype: str, ok: bool | None, reason: str, message: str, generation: int | None, at: str
) -> list[JSON]:
    """Return ``conditions`` with ``ctype`` set; lastTransitionTime only moves when status changes."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    out = [c for c in conditions if c.get("type") != ctype]
    prev = next((c for c in conditions if c.get("type") == ctype), None)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status else at
    cond: JSON = {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}
    if generation is not None:
        cond["observedGeneration"] = generation
    out.append(cond)
    return sorted(out, key=lambda c: c["type"])


def deployment_status(owner: JSON, child: JSON | None, at: str | None = None) -> JSON:
    """The status patch for ``owner`` given the child Deployment (or None if it does not exist yet)."""
    at = at or now()
    meta = owner["metadata"]
    gen = meta.get("generation")
    prev = owner.get("status", {}).get("conditions", []) or []
    name = meta["name"]
    desired = owner.get("spec", {}).get("replicas", 1)
    cstatus = (child or {}).get("status", {})
    ready = int(cstatus.get("readyReplicas", 0) or 0)
    replicas = int(cstatus.get("replicas", 0) or 0)
    if child is None:
        ok, reason, message = False, "Creating", "the inference Deployment does not exist yet"
    elif ready > 0:
        ok, reason, message = True, "Serving", f"{ready} of {desired} replica(s) ready"
    elif desired == 0:
        ok, reason, message = False, "ScaledToZero", "no replicas; the router wakes the model on the next request"
    else:
        ok, reason, message = False, "Starting", f"0 of {desired} replica(s) ready (loading the model)"
    return {
        "observedGeneration": gen,
        "replicas": replicas,
        "readyReplicas": ready,
        "selector": names.selector_string(names.inference_selector(name)),
        "url": f"http://{names.child_name(name)}.{meta['namespace']}.svc:{names.INFERENCE_PORT}",
        "conditions": set_condition(prev, "Ready", ok, reason, message, gen, at),
    }
