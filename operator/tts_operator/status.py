"""TtsDeployment status from its child Deployment and pods (pure; unit-tested).

Conditions (metav1.Condition shape):
- ``Ready``: at least one replica serves now. Reasons when False name what to do about it:
  ``ScaledToZero``, ``InsufficientGPU``, ``Unschedulable``, ``ImagePullFailed``, ``CrashLooping``,
  ``ModelFetchFailed``, ``ServerFailing`` (a server engine's answers fail), ``ModelFetching``,
  ``ServerStarting``, ``ModelLoading``, ``Starting``, ``Creating``; and
  ``InvalidSpec`` or ``ApplyFailed`` when the operator cannot apply the spec (the message names
  the field, or the API server's answer).
- ``Available``: every desired replica is ready (True with ``ScaledToZero`` when none is desired).
- ``Progressing``: a roll-out or scale is under way (``RollingOut``, ``Scaling``), else False ``Stable``.
- ``Degraded``: something needs attention (same reasons as the failing ``Ready`` ones, plus
  ``ProgressDeadlineExceeded``), else False ``AsExpected``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from tts_crds import names
from tts_crds.aliases import Claimant, alias_table
from tts_crds.models import Condition, TtsDeploymentStatus
from tts_crds.times import now_iso

JSON = dict[str, Any]

# most specific first: the Ready reason is the first that applies
PROBLEMS = ("InsufficientGPU", "Unschedulable", "ImagePullFailed", "CrashLooping", "ModelFetchFailed", "ServerFailing")
# what a kubelet says while it cannot get a container's image
IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
WAITING = ("ModelFetching", "ServerStarting", "ModelLoading", "Starting")
# the containers of a server-engine pod (operator/tts_operator/server_pod.py, ADR 0047)
SERVER_CONTAINER, BRIDGE_CONTAINER = "server", "inference"


@dataclass
class PodFindings:
    """What the pods of one TtsDeployment are doing, reason -> pod messages."""

    total: int = 0
    ready: int = 0
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, message: str) -> None:
        self.reasons.setdefault(reason, []).append(message)

    def first(self, candidates: tuple[str, ...]) -> tuple[str, str] | None:
        for reason in candidates:
            if reason in self.reasons:
                msgs = self.reasons[reason]
                more = f" (and {len(msgs) - 1} more)" if len(msgs) > 1 else ""
                return reason, msgs[0] + more
        return None


def _waiting_reason(statuses: list[JSON]) -> tuple[str, str] | None:
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            why = f": {last['message'].strip()}" if last.get("message") else ""
            return "CrashLoopBackOff", f"container {cs['name']} keeps exiting (exit code {last.get('exitCode')}){why}"
    return None


def _image_problem(statuses: list[JSON]) -> str | None:
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            why = f": {waiting['message'].strip()}" if waiting.get("message") else ""
            return f"container {cs['name']} image {cs.get('image', '?')}: {waiting['reason']}{why}"
    return None


def _server_problem(pod: str, statuses: list[JSON]) -> tuple[str, str] | None:
    """A running server-engine pod that is not ready: its server still starting, or failing answers
    (its server is ready but the bridge is not: the bridge's breaker tripped)."""
    by_name = {cs.get("name"): cs for cs in statuses if "running" in (cs.get("state") or {})}
    server, bridge = by_name.get(SERVER_CONTAINER), by_name.get(BRIDGE_CONTAINER)
    if server is None or bridge is None:
        return None
    if not server.get("ready"):
        return "ServerStarting", f"pod {pod}: the server runs but does not answer its readiness path yet"
    if not bridge.get("ready"):
        return "ServerFailing", f"pod {pod}: the server answers errors or no audio (GET /v1/status on the pod says why)"
    return None


def analyse_pods(pods: list[JSON], gpu_resource: str) -> PodFindings:
    out = PodFindings()
    for pod in pods:
        meta = pod.get("metadata", {})
        if meta.get("deletionTimestamp"):
            continue
        out.total += 1
        name = meta.get("name", "?")
        status = pod.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        if conditions.get("Ready", {}).get("status") == "True":
            out.ready += 1
            continue
        scheduled = conditions.get("PodScheduled", {})
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            message = scheduled.get("message", "")
            if f"Insufficient {gpu_resource}" in message or "Insufficient nvidia.com/" in message:
                out.add("InsufficientGPU", f"pod {name} cannot be scheduled: {message}")
            else:
                out.add("Unschedulable", f"pod {name} cannot be scheduled: {message}")
            continue
        init = status.get("initContainerStatuses") or []
        pulling = _image_problem(init + (status.get("containerStatuses") or []))
        if pulling:
            out.add("ImagePullFailed", f"pod {name}: {pulling}")
            continue
        crash = _waiting_reason(init)
        if crash:
            out.add("ModelFetchFailed", f"pod {name}: {crash[1]}")
            continue
        if any("running" in (cs.get("state") or {}) for cs in init):
            out.add("ModelFetching", f"pod {name} is fetching the model")
            continue
        crash = _waiting_reason(status.get("containerStatuses") or [])
        if crash:
            out.add("CrashLooping", f"pod {name}: {crash[1]}")
            continue
        server = _server_problem(name, status.get("containerStatuses") or [])
        if server:
            out.add(*server)
            continue
        running = [cs for cs in status.get("containerStatuses") or [] if "running" in (cs.get("state") or {})]
        if running:
            out.add("ModelLoading", f"pod {name} is loading the model")
        else:
            out.add("Starting", f"pod {name} is {status.get('phase', 'Pending').lower()}")
    return out


def conditions_of(status: JSON | None) -> list[Condition]:
    """The conditions of a status as the API returned it (one that does not parse is left out)."""
    out = []
    for raw in (status or {}).get("conditions") or []:
        try:
            out.append(Condition.model_validate(raw))
        except ValidationError:
            continue
    return out


def ready_pod_ip(pods: list[JSON]) -> str | None:
    """The IP of a pod that is Ready (to ask the engine for its speakers), or None."""
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if ready and status.get("podIP"):
            return str(status["podIP"])
    return None


def set_condition(
    conditions: list[Condition], ctype: str, ok: bool | None, reason: str, message: str, generation: int | None, at: str
) -> list[Condition]:
    """Return ``conditions`` with ``ctype`` set; lastTransitionTime only moves when status changes."""
    status: Any = "Unknown" if ok is None else ("True" if ok else "False")
    prev = next((c for c in conditions if c.type == ctype), None)
    since = prev.last_transition_time if prev and prev.status == status else at
    cond = Condition(
        type=ctype,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return sorted([c for c in conditions if c.type != ctype] + [cond], key=lambda c: c.type)


def condition_of(obj: JSON, ctype: str) -> JSON | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), None)


def _progress(desired: int, child: JSON | None) -> tuple[bool, str, str, bool]:
    """(progressing, reason, message, deadline_exceeded) from the child Deployment's status."""
    if child is None:
        return True, "Creating", "creating the inference Deployment", False
    st = child.get("status") or {}
    gen = (child.get("metadata") or {}).get("generation")
    deadline = any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in st.get("conditions") or []
    )
    replicas = int(st.get("replicas") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    if st.get("observedGeneration") != gen or updated < desired or replicas > desired:
        if updated < desired or (replicas > updated):
            return True, "RollingOut", f"{updated} of {desired} replica(s) updated", deadline
        return True, "Scaling", f"{replicas} replica(s), {desired} desired", deadline
    if replicas < desired:
        return True, "Scaling", f"{replicas} replica(s), {desired} desired", deadline
    return False, "Stable", "no roll-out or scaling in progress", deadline


Verdict = tuple[bool, str, str]  # (ok, reason, message) of one condition


def _ready(desired: int, found: PodFindings, child: JSON | None) -> Verdict:
    problem, waiting = found.first(PROBLEMS), found.first(WAITING)
    if found.ready > 0:
        return (True, "Serving", f"{found.ready} of {desired} replica(s) ready")
    if desired == 0 and found.total == 0:
        return (False, "ScaledToZero", "scaled to zero; the next request wakes the model")
    if child is None:
        return (False, "Creating", "the inference Deployment is being created")
    if problem:
        return (False, *problem)
    if waiting:
        return (False, *waiting)
    return (False, "Starting", f"waiting for {desired} pod(s) to be created")


def _available(desired: int, ready: int) -> Verdict:
    if desired == 0:
        return (True, "ScaledToZero", "no replicas desired")
    if ready >= desired:
        return (True, "AllReplicasReady", f"{ready} of {desired} replica(s) ready")
    return (False, "ReplicasUnavailable", f"{ready} of {desired} replica(s) ready")


def _degraded(found: PodFindings, deadline: bool) -> Verdict:
    problem = found.first(PROBLEMS)
    if problem:
        return (True, *problem)
    if deadline:
        return (True, "ProgressDeadlineExceeded", "the roll-out has not progressed for 15 minutes")
    return (False, "AsExpected", "")


def deployment_status(
    owner: JSON,
    child: JSON | None,
    pods: list[JSON],
    gpu_resource: str = names.DEFAULT_GPU_RESOURCE,
    at: str = "",
    observed_generation: int | None = None,
    blocked: tuple[str, str] | None = None,
) -> TtsDeploymentStatus:
    """The status for ``owner`` given its child Deployment (None if missing) and pods; ``.patch()`` is the body.

    ``observed_generation`` is the generation whose spec the operator has applied (defaults to
    the current one); it is what ``status.observedGeneration`` and the conditions report.
    ``blocked`` is ``(reason, message)`` when the operator cannot apply the spec (``InvalidSpec``,
    ``ApplyFailed``): then Ready is False and Degraded True with that reason, whatever the pods do.
    """
    at = at or now_iso()
    meta = owner["metadata"]
    gen = observed_generation if observed_generation is not None else meta.get("generation")
    name = meta["name"]
    desired = int((owner.get("spec") or {}).get("replicas", 1))
    found = analyse_pods(pods, gpu_resource)
    progressing, p_reason, p_message, deadline = _progress(desired, child)
    verdicts: dict[str, Verdict] = {
        "Ready": (False, *blocked) if blocked else _ready(desired, found, child),
        "Available": _available(desired, found.ready),
        "Progressing": (progressing, p_reason, p_message),
        "Degraded": (True, *blocked) if blocked else _degraded(found, deadline),
    }
    conditions = conditions_of(owner.get("status"))
    for ctype, (ok, reason, message) in verdicts.items():
        conditions = set_condition(conditions, ctype, ok, reason, message, gen, at)
    return TtsDeploymentStatus(
        observed_generation=gen,
        replicas=found.total,
        ready_replicas=found.ready,
        replica_counts=f"{found.ready}/{desired}",
        selector=names.selector_string(names.inference_selector(name)),
        url=f"http://{names.child_name(name)}.{meta['namespace']}.svc:{names.INFERENCE_PORT}",
        conditions=conditions,
    )


def changed(current: JSON, patch: JSON) -> bool:
    """Would merging ``patch`` into ``current`` change anything?"""
    return any(current.get(k) != v for k, v in patch.items())


def claimant_of(obj: JSON) -> Claimant:
    """A TtsDeployment as the alias rules see it (``tts_crds.aliases``)."""
    meta = obj.get("metadata") or {}
    raw = (obj.get("spec") or {}).get("modelAliases") or []
    return Claimant(str(meta.get("name")), str(meta.get("creationTimestamp") or ""), tuple(str(a) for a in raw))


def aliases_verdict(name: str, namespace_objects: list[JSON]) -> Verdict | None:
    """The ``Aliases`` condition of ``name`` among its namespace's TtsDeployments (ADR 0042): True
    ``Claimed`` when it holds every alias it claims, False ``AliasConflict`` naming each lost claim
    (another model's name, or an alias an older TtsDeployment holds); None when it claims none."""
    claimants = [claimant_of(o) for o in namespace_objects if not (o.get("metadata") or {}).get("deletionTimestamp")]
    mine = next((c for c in claimants if c.name == name), None)
    if mine is None or not mine.aliases:
        return None
    lost = alias_table(claimants, None).conflicts.get(name, [])
    if lost:
        return (False, "AliasConflict", "; ".join(why for _, why in lost) + " (the router ignores these claims)")
    return (True, "Claimed", f"answers to {', '.join(sorted(mine.aliases))}")


def with_aliases(status: TtsDeploymentStatus, verdict: Verdict | None, generation: int | None, at: str = "") -> None:
    """Set (or, once no alias is claimed, drop) the ``Aliases`` condition of a computed status."""
    if verdict is None:
        status.conditions = [c for c in status.conditions if c.type != "Aliases"]
        return
    ok, reason, message = verdict
    status.conditions = set_condition(status.conditions, "Aliases", ok, reason, message, generation, at or now_iso())


def rivals(name: str, namespace_objects: list[JSON]) -> list[str]:
    """The other TtsDeployments that claim one of ``name``'s aliases or its name."""
    claimants = [claimant_of(o) for o in namespace_objects]
    mine = next((c for c in claimants if c.name == name), None)
    wanted = set(mine.aliases if mine else ()) | {name}
    return sorted(c.name for c in claimants if c.name != name and wanted & set(c.aliases))
