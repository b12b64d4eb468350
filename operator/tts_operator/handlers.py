"""Kopf handlers. Short by design: parse the spec, build desired objects, apply, report status.

Status is computed in one place (``refresh_status``), debounced per TtsDeployment, and triggered
by anything that can change it: a reconcile, an event on a child Deployment/Service/PDB, an event
on one of its pods. Autoscaling is one background loop (every ``autoscale_period_seconds``) that
reads the latest router scrape.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names
from tts_crds.models import (
    AudioInfo,
    InvalidSpec,
    TtsDeploymentSpec,
    TtsDeploymentStatus,
    TtsVoiceSpec,
    TtsVoiceStatus,
    parse_spec,
)

from . import autoscale, children, kube, voices
from .settings import OperatorSettings
from .status import changed, condition_of, conditions_of, deployment_status, iso, now_iso, parse_time, set_condition

log = logging.getLogger("tts_operator")

VOICE_RECHECK_PERIOD = 30.0
CHILD_LABELS = {names.LABEL_MANAGED_BY: names.MANAGER}
POD_LABELS = {names.LABEL_COMPONENT: names.COMPONENT_INFERENCE, names.LABEL_MANAGED_BY: names.MANAGER}

Key = tuple[str, str]


class Scrape:
    """The latest sum of the routers' load, shared by every handler."""

    def __init__(self) -> None:
        self.taken_at = 0.0
        self.loads: dict[Key, autoscale.Load] | None = None

    def update(self, loads: dict[Key, autoscale.Load] | None) -> None:
        self.loads = loads
        self.taken_at = time.time()

    def load_of(self, key: Key, max_age: float) -> autoscale.Load | None:
        """A deployment's load; None when no router answered recently (then nobody decides)."""
        if self.loads is None or time.time() - self.taken_at > max_age:
            return None
        return self.loads.get(key, autoscale.Load())


class ObjectCache:
    """The latest TtsDeployments and TtsVoices as the event stream shows them (shared by reference)."""

    def __init__(self) -> None:
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.voices: dict[Key, dict[str, Any]] = {}
        self.voice_schedule: dict[Key, tuple[float, float]] = {}  # key -> (next check, back-off)

    def update(self, store: dict[Key, dict[str, Any]], kind: str | None, body: kopf.Body) -> Key:
        key: Key = (str(body.metadata.namespace), str(body.metadata.name))
        if kind == "DELETED":
            store.pop(key, None)
            self.voice_schedule.pop(key, None)
        else:
            store[key] = copy.deepcopy(dict(body))
        return key


class Debouncer:
    """Run ``fn(*key)`` soon after ``schedule(key)``; bursts of calls coalesce into one run."""

    def __init__(self, fn: Callable[[str, str], Awaitable[None]], delay: float = 0.2) -> None:
        self.fn = fn
        self.delay = delay
        self.tasks: dict[Key, asyncio.Task[None]] = {}
        self.dirty: set[Key] = set()

    def schedule(self, key: Key) -> None:
        task = self.tasks.get(key)
        if task is not None and not task.done():
            self.dirty.add(key)
            return
        self.tasks[key] = asyncio.create_task(self._run(key))

    async def _run(self, key: Key) -> None:
        while True:
            await asyncio.sleep(self.delay)
            self.dirty.discard(key)
            try:
                await self.fn(*key)
            except ApiException as exc:
                log.warning("status of %s/%s not refreshed: %s %s", *key, exc.status, exc.reason)
            except Exception:  # a background task must survive anything and say why
                log.exception("status of %s/%s not refreshed", *key)
            if key not in self.dirty:
                return

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


# --- lifecycle ---------------------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # ``memo.settings`` is the OperatorSettings that ``__main__`` built once and handed to Kopf
    ours: OperatorSettings = memo.settings
    # keep Kopf's bookkeeping in annotations under our group, not in .status
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 120
    settings.networking.request_timeout = 30
    settings.batching.worker_limit = 64
    if ours.namespaces:
        # Namespaced RBAC: no cluster-wide listing of namespaces or CRDs. The namespaces are the
        # configured ones and the CRDs are known to exist (the chart installs them).
        settings.scanning.disabled = True
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    memo.api = client.ApiClient()
    memo.kube = kube.Kube(memo.api)
    memo.http = aiohttp.ClientSession()
    # Kopf gives every object a shallow copy of the memo: state that changes must live in an
    # object the copies share, never in an attribute that is reassigned.
    memo.scrape = Scrape()
    memo.scale_memory = {}
    memo.applied_generation = {}  # (kind, ns, child name) -> generation our last apply produced
    memo.reconciled = {}  # (ns, name) -> TtsDeployment generation whose spec has been applied
    memo.blocked = {}  # (ns, name) -> (reason, message) while its spec cannot be applied
    memo.refresher = Debouncer(lambda ns, name: refresh_status(memo, ns, name))
    memo.cache = ObjectCache()
    memo.scraper = asyncio.create_task(scrape_loop(memo))
    memo.loops = [asyncio.create_task(autoscale_loop(memo)), asyncio.create_task(voice_loop(memo))]


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in (memo.scraper, *memo.loops):
        task.cancel()
    await asyncio.gather(memo.scraper, *memo.loops, return_exceptions=True)
    await memo.refresher.close()
    await memo.http.close()
    await memo.api.close()


async def scrape_loop(memo: kopf.Memo) -> None:
    settings: OperatorSettings = memo.settings
    while True:
        try:
            urls = await memo.kube.router_metrics_urls(
                settings.router_selector, settings.router_namespace, settings.metrics_urls
            )
            loads = await kube.scrape(memo.http, urls) if urls else None
            memo.scrape.update(loads)
        except ApiException as exc:
            log.warning("cannot find routers to scrape: %s %s", exc.status, exc.reason)
            memo.scrape.update(None)
        except Exception:  # the loop must outlive an apiserver restart, or autoscaling stops for good
            log.exception("router scrape failed; retrying")
            memo.scrape.update(None)
        await asyncio.sleep(settings.autoscale_period_seconds)


# --- TtsDeployment ---------------------------------------------------------------------------


def deployment_spec(body: dict[str, Any] | kopf.Body) -> TtsDeploymentSpec:
    """The one parse of a TtsDeployment's spec; :class:`InvalidSpec` names the field (the CRD schema
    rejects nearly all of this first; this covers what it cannot express)."""
    return parse_spec(TtsDeploymentSpec, body.get("spec"))


def _body_text(exc: ApiException) -> str:
    body = exc.body
    return body.decode(errors="replace") if isinstance(body, bytes) else str(body)


async def apply_children(memo: kopf.Memo, owner: dict[str, Any], spec: TtsDeploymentSpec) -> None:
    """Apply every child; afterwards the owner's generation counts as observed."""
    k: kube.Kube = memo.kube
    ns, name = owner["metadata"]["namespace"], owner["metadata"]["name"]
    desired = [children.deployment(owner, spec, memo.settings), children.service(owner)]
    pdb = children.pod_disruption_budget(owner, spec)
    if pdb:
        desired.append(pdb)
    try:
        for obj in desired:
            applied = await k.apply(obj)
            memo.applied_generation[(obj["kind"], ns, obj["metadata"]["name"])] = applied["metadata"].get("generation")
        if pdb is None:
            await k.delete_pdb(ns, names.child_name(name))
        memo.reconciled[(ns, name)] = owner["metadata"].get("generation")
        memo.blocked.pop((ns, name), None)
    except ApiException as exc:
        if exc.status == 403 and "NamespaceTerminating" in _body_text(exc):
            return  # the whole namespace is going away: nothing to restore
        if exc.status in (400, 403, 422):
            message = f"cannot apply children: {exc.reason}: {_body_text(exc)}"
            await block(memo, ns, name, "ApplyFailed", message)
            raise kopf.PermanentError(message) from exc
        message = f"cannot apply children ({exc.status} {exc.reason}); retrying"
        await block(memo, ns, name, "ApplyFailed", message)
        raise kopf.TemporaryError(message, delay=5) from exc


async def block(memo: kopf.Memo, namespace: str, name: str, reason: str, message: str) -> None:
    """The spec cannot be applied: say so in status (Ready False, Degraded True with ``reason``, which
    posts a Warning event) before the handler raises. Until the next successful apply every status
    refresh keeps saying it."""
    memo.blocked[(namespace, name)] = (reason, message)
    try:
        await refresh_status(memo, namespace, name)
    except ApiException as exc:  # the error being reported matters more than this one
        log.warning("status of %s/%s not updated with %s: %s %s", namespace, name, reason, exc.status, exc.reason)


@kopf.on.resume(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL, field="spec")
async def reconcile_deployment(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    try:
        spec = deployment_spec(body)
    except InvalidSpec as exc:
        await block(memo, str(body.metadata.namespace), str(body.metadata.name), "InvalidSpec", f"invalid spec: {exc}")
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    await apply_children(memo, dict(body), spec)
    log.info("%s/%s: applied children (replicas=%d)", body.metadata.namespace, body.metadata.name, spec.replicas)
    memo.refresher.schedule((body.metadata.namespace, body.metadata.name))


@kopf.on.event(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL)
async def deployment_seen(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.update(memo.cache.deployments, type, body)


@kopf.on.event(names.GROUP, names.VERSION, names.VOICE_PLURAL)
async def voice_seen(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.update(memo.cache.voices, type, body)


@kopf.on.delete(names.GROUP, names.VERSION, names.DEPLOYMENT_PLURAL, optional=True)
async def forget_deployment(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.scale_memory.pop((body.metadata.namespace, body.metadata.name), None)
    memo.reconciled.pop((body.metadata.namespace, body.metadata.name), None)
    memo.blocked.pop((body.metadata.namespace, body.metadata.name), None)


def _owner_of(body: kopf.Body) -> Key | None:
    owner = (body.metadata.labels or {}).get(names.LABEL_DEPLOYMENT)
    return (str(body.metadata.namespace), owner) if owner else None


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "services", labels=CHILD_LABELS)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=CHILD_LABELS)
async def child_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A child changed: restore it if it was deleted or edited by hand; refresh the status."""
    key = _owner_of(body)
    if key is None:
        return
    kind = body.get("kind", "")
    ident = (kind, key[0], body.metadata.name)
    generation = body.metadata.get("generation")
    drifted = type == "DELETED" or (
        type == "MODIFIED" and (kind == "Service" or generation != memo.applied_generation.get(ident))
    )
    if drifted:
        owner = await memo.kube.get_tts_deployment(*key)
        if owner is not None and not owner["metadata"].get("deletionTimestamp"):
            try:
                spec = deployment_spec(owner)
            except InvalidSpec:
                return
            if kind == "PodDisruptionBudget" and children.pod_disruption_budget(owner, spec) is None:
                return  # we removed it ourselves
            if type == "DELETED":
                log.info("%s %s/%s was deleted; restoring it", kind, key[0], body.metadata.name)
            await apply_children(memo, owner, spec)
    memo.refresher.schedule(key)


@kopf.on.event("", "v1", "pods", labels=POD_LABELS)
async def pod_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = _owner_of(body)
    if key is not None:
        memo.refresher.schedule(key)


async def refresh_status(memo: kopf.Memo, namespace: str, name: str) -> None:
    k: kube.Kube = memo.kube
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
    observed = memo.reconciled.get((namespace, name), current.get("observedGeneration"))
    blocked = memo.blocked.get((namespace, name))
    new = deployment_status(owner, child, pods, gpu_resource, observed_generation=observed, blocked=blocked)
    if (new.ready_replicas or 0) > 0 and (
        current.get("speakers") is None or current.get("observedGeneration") != new.observed_generation
    ):
        ready_ip = next(
            (
                p["status"]["podIP"]
                for p in pods
                if p.get("status", {}).get("podIP")
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            ),
            None,
        )
        if ready_ip:
            speakers = await kube.engine_speakers(memo.http, ready_ip)
            if speakers is not None:
                new.speakers = speakers
    patch = new.patch()
    if not changed(current, patch):
        return
    await k.patch_status(names.DEPLOYMENT_PLURAL, namespace, name, patch)
    await _announce(memo, owner, current, patch)


async def _announce(memo: kopf.Memo, owner: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    """Kubernetes Events when a TtsDeployment becomes degraded or recovers."""
    old = condition_of({"status": before}, "Degraded") or {}
    new = condition_of({"status": after}, "Degraded") or {}
    if new.get("status") == "True" and (old.get("status") != "True" or old.get("reason") != new.get("reason")):
        await memo.kube.event(owner, new["reason"], new["message"], warning=True)
    elif old.get("status") == "True" and new.get("status") != "True":
        await memo.kube.event(owner, "Recovered", f"no longer {old.get('reason')}")


async def autoscale_loop(memo: kopf.Memo) -> None:
    """Every period, decide replicas for every known TtsDeployment (one loop, not a Kopf timer per
    object: Kopf puts a finalizer on objects with timers, so deleting one would need the operator)."""
    period = memo.settings.autoscale_period_seconds
    while True:
        await asyncio.sleep(period)
        for body in list(memo.cache.deployments.values()):
            try:
                await autoscale_one(memo, body)
            except ApiException as exc:
                log.warning(
                    "autoscaling %s/%s: %s %s",
                    body["metadata"]["namespace"],
                    body["metadata"]["name"],
                    exc.status,
                    exc.reason,
                )
            except Exception:  # one object must not stop autoscaling for the others
                log.exception("autoscaling %s/%s failed", body["metadata"]["namespace"], body["metadata"]["name"])


async def autoscale_one(memo: kopf.Memo, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    key: Key = (str(meta["namespace"]), str(meta["name"]))
    try:
        spec = deployment_spec(body)
    except InvalidSpec:
        return
    status = dict(body.get("status") or {})
    ready = condition_of({"status": status}, "Ready") or {}
    load = memo.scrape.load_of(key, max_age=3 * memo.settings.autoscale_period_seconds)
    inputs = autoscale.Inputs(
        desired=spec.replicas,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        target=spec.target_concurrency,
        idle_seconds=spec.scale_to_zero.idle_seconds,
        ready=int(status.get("readyReplicas") or 0),
        pods=int(status.get("replicas") or 0),
        ready_since=parse_time(ready.get("lastTransitionTime")) if ready.get("status") == "True" else None,
        last_activity=parse_time(status.get("lastActivityTime")),
        load=load,
        now=time.time(),
        load_taken_at=memo.scrape.taken_at if load is not None else None,
    )
    decision = autoscale.decide(inputs, memo.scale_memory.get(key, autoscale.Memory()))
    memo.scale_memory[key] = decision.memory
    status_patch = TtsDeploymentStatus()
    recorded = parse_time(status.get("lastActivityTime"))
    if decision.last_activity is not None and (recorded is None or decision.last_activity > recorded + 0.5):
        status_patch.last_activity_time = iso(decision.last_activity)
    if decision.changed:
        try:
            # resourceVersion makes this a compare-and-swap: never overwrite a concurrent wake-up
            await memo.kube.objects.patch_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                key[0],
                names.DEPLOYMENT_PLURAL,
                key[1],
                {
                    "metadata": {"resourceVersion": meta.get("resourceVersion")},
                    "spec": {"replicas": decision.replicas},
                },
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status == 409:
                return  # changed meanwhile; decide again next period
            raise
        message = _scale_message(decision, inputs)
        log.info("%s/%s: %s", key[0], key[1], message)
        reason = "ScaledToZero" if decision.replicas == 0 else "Scaled"
        await memo.kube.event(body, reason, message)
        if decision.replicas == 0:
            status_patch.scaled_to_zero_at = now_iso()
    if status_patch.patch():
        await memo.kube.patch_status(names.DEPLOYMENT_PLURAL, key[0], key[1], status_patch.patch())


def _scale_message(d: autoscale.Decision, i: autoscale.Inputs) -> str:
    busy = i.load.busy if i.load else 0
    why = {
        "idle": f"idle for {i.idle_seconds:.0f}s",
        "load-up": f"{busy} request(s) in flight or queued for {i.ready} ready replica(s)",
        "load-down": f"load of {busy} fits fewer replicas",
        "bounds": f"kept within {i.min_replicas}..{i.max_replicas}",
        "wake": f"{busy} request(s) waiting",
    }[d.reason]
    return f"scaled from {i.desired} to {d.replicas} replica(s): {why}"


# --- TtsVoice --------------------------------------------------------------------------------


@kopf.on.resume(names.GROUP, names.VERSION, names.VOICE_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.VOICE_PLURAL)
@kopf.on.update(names.GROUP, names.VERSION, names.VOICE_PLURAL, field="spec")
async def reconcile_voice(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await validate_voice(memo, copy.deepcopy(dict(body)))


# what may appear shortly (a clip written just after its TtsVoice, a model about to be created or
# to publish its speakers): look again soon, backing off to the normal re-check period
SOON = ("AudioNotFound", "DeploymentNotFound", "SpeakersUnknown")


async def voice_loop(memo: kopf.Memo) -> None:
    """Re-validate voices: a changed ConfigMap or Secret, or speakers a model publishes later, are
    picked up without watching every ConfigMap and Secret (which would need far broader RBAC)."""
    while True:
        await asyncio.sleep(1)
        now = time.monotonic()
        for key, body in list(memo.cache.voices.items()):
            due, delay = memo.cache.voice_schedule.get(key, (0.0, 1.0))
            if now < due or body["metadata"].get("deletionTimestamp"):
                continue
            try:
                reason = await validate_voice(memo, body)
            except ApiException as exc:
                log.warning("voice %s/%s: %s %s", *key, exc.status, exc.reason)
                reason = "ApiError"
            except Exception:
                log.exception("voice %s/%s: validation failed", *key)
                reason = "Error"
            delay = min(delay * 2, VOICE_RECHECK_PERIOD) if reason in SOON else VOICE_RECHECK_PERIOD
            memo.cache.voice_schedule[key] = (now + delay, delay if reason in SOON else 1.0)


async def validate_voice(memo: kopf.Memo, body: dict[str, Any]) -> str:
    """Validate the voice against its TtsDeployment and its clip; returns the Ready reason."""
    meta = body["metadata"]
    ns, name = str(meta["namespace"]), str(meta["name"])
    try:
        spec: TtsVoiceSpec | None = parse_spec(TtsVoiceSpec, body.get("spec"))
    except InvalidSpec as exc:
        verdict = voices.Verdict(False, "InvalidSpec", str(exc))
        spec = None
    if spec is not None:
        verdict = await _judge_voice(memo, ns, spec)
    status = dict(body.get("status") or {})
    gen = meta.get("generation")
    ok: bool | None = verdict.ok
    if verdict.reason == "SpeakersUnknown":
        ok = None
    typed = TtsVoiceStatus(
        observed_generation=gen,
        conditions=set_condition(conditions_of(status), "Ready", ok, verdict.reason, verdict.message, gen, now_iso()),
    )
    if verdict.clip is not None:
        typed.audio = AudioInfo(
            duration_seconds=verdict.clip.duration, sample_rate=verdict.clip.sample_rate, sha256=verdict.clip.sha256
        )
    new = typed.patch()
    if not changed(status, new):
        return verdict.reason
    await memo.kube.patch_status(names.VOICE_PLURAL, ns, name, new)
    body["status"] = {**status, **new}
    before = condition_of({"status": status}, "Ready") or {}
    if ok is False and (before.get("reason") != verdict.reason or before.get("status") != "False"):
        await memo.kube.event(body, verdict.reason, verdict.message, warning=True)
    return verdict.reason


async def _judge_voice(memo: kopf.Memo, ns: str, spec: TtsVoiceSpec) -> voices.Verdict:
    deployment = await memo.kube.get_tts_deployment(ns, spec.deployment)
    if deployment is None:
        return voices.Verdict(False, "DeploymentNotFound", f"TtsDeployment {spec.deployment!r} does not exist")
    if spec.speaker is not None:
        return voices.check_speaker(spec.speaker, (deployment.get("status") or {}).get("speakers"))
    assert spec.reference is not None
    audio = spec.reference.audio
    kind, ref = (
        ("configMapKeyRef", audio.config_map_key_ref)
        if audio.config_map_key_ref
        else ("secretKeyRef", audio.secret_key_ref)
    )
    assert ref is not None
    data = await memo.kube.read_key(ns, kind, ref.name, ref.key)
    if data is None:
        what = "ConfigMap" if kind == "configMapKeyRef" else "Secret"
        return voices.Verdict(False, "AudioNotFound", f"{what} {ref.name!r} has no key {ref.key!r} (or does not exist)")
    return voices.inspect_clip(data)
