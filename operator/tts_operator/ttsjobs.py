"""TtsJob controller (ADR 0050): plan → ConfigMap and Indexed Job; a timer turns the Job and the files
on the jobs volume into status; a finalizer deletes the files of a ``retain: false`` job.

The steps of :func:`start` each end the handler for good when the spec cannot run (a ``Failed``
condition naming the field, an event, nothing created) and are idempotent otherwise, so a resumed
operator (or one SIGKILLed mid-way) simply runs them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names
from tts_crds.jobs import Phase, TtsJobSpec, TtsJobStatus
from tts_crds.models import InvalidSpec
from tts_crds.plan import Plan, PlanError, build_plan, load_plan
from tts_crds.times import now_iso

from . import job_files, jobs
from .kube import body_text
from .runtime import Runtime, key_of, runtime_of
from .status import changed

log = logging.getLogger("tts_operator")

POLL_SECONDS = 3.0
# a textFrom ConfigMap may be written just after its TtsJob (the router writes the text first, a
# user's `kubectl apply -f` may not): so many handler retries, 2 s apart, before it is InvalidText
TEXT_RETRIES = 5


class Refused(Exception):
    """The TtsJob cannot run: ``reason`` and a ``message`` naming the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def fail(rt: Runtime, owner: dict[str, Any], reason: str, message: str) -> None:
    """Say in status and an event that the TtsJob cannot run."""
    ns, name = key_of(owner)
    status = jobs.failed_status(owner, reason, message, now_iso())
    await rt.kube.patch_status(names.JOB_PLURAL, ns, name, status.patch())
    await rt.kube.event(owner, reason, message, warning=True)
    log.info("ttsjob %s/%s failed: %s: %s", ns, name, reason, message)


async def read_text(rt: Runtime, namespace: str, spec: TtsJobSpec, retry: int) -> str | None:
    """The text ``spec.textFrom`` names (None without one)."""
    if spec.text_from is None:
        return None
    ref = spec.text_from.config_map_key_ref
    data = await rt.kube.read_key(namespace, "configMapKeyRef", ref.name, ref.key)
    if data is None:
        if retry < TEXT_RETRIES:
            raise kopf.TemporaryError(f"ConfigMap {ref.name} key {ref.key} not found yet", delay=2)
        raise Refused("InvalidText", f"spec.textFrom.configMapKeyRef: ConfigMap {ref.name!r} has no key {ref.key!r}")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise Refused("InvalidText", f"spec.textFrom.configMapKeyRef: the text is not UTF-8 ({exc})") from exc


async def check_deployments(rt: Runtime, namespace: str, spec: TtsJobSpec) -> None:
    names_wanted = {spec.deployment} | {r.deployment for r in (spec.roles or {}).values() if r.deployment}
    found = {n for n in names_wanted if await rt.kube.get_tts_deployment(namespace, n) is not None}
    missing = jobs.missing_deployments(spec, found)
    if missing:
        where, name = missing[0]
        raise Refused("DeploymentNotFound", f"{where}: TtsDeployment {name!r} not found in namespace {namespace}")


async def make_plan(rt: Runtime, owner: dict[str, Any], spec: TtsJobSpec, retry: int) -> Plan:
    ns, name = key_of(owner)
    text = await read_text(rt, ns, spec, retry)
    t0 = time.perf_counter()
    try:
        plan = build_plan(spec, text, name=name, namespace=ns, uid=str(owner["metadata"]["uid"]))
    except PlanError as exc:
        raise Refused(jobs.plan_failure_reason(exc), str(exc)) from exc
    log.info(
        "ttsjob %s/%s: plan of %d chunk(s) in %d chapter(s) built in %.3f s",
        ns,
        name,
        plan.totals.chunks,
        plan.totals.chapters,
        time.perf_counter() - t0,
    )
    return plan


async def start(rt: Runtime, owner: dict[str, Any], retry: int) -> None:
    """Plan, check, create the ConfigMap and the Job (each a no-op when done before)."""
    ns, name = key_of(owner)
    if not rt.settings.jobs_enabled:
        raise Refused("JobsDisabled", "this platform runs no TtsJobs (the chart's jobs.enabled is false)")
    if await rt.kube.get_job(ns, names.job_child_name(name)) is not None:
        return  # made before (a resumed operator): the timer carries on
    try:
        spec = jobs.job_spec(owner)
        plan = await make_plan(rt, owner, spec, retry)
        await check_deployments(rt, ns, spec)
        config_map = jobs.plan_config_map(owner, plan)
    except InvalidSpec as exc:
        raise Refused("InvalidSpec", str(exc)) from exc
    except PlanError as exc:  # too large for a ConfigMap
        raise Refused(jobs.plan_failure_reason(exc), str(exc)) from exc
    try:
        await rt.kube.apply(config_map)
        await rt.kube.event(owner, "PlanBuilt", f"{plan.totals.chunks} chunk(s) in {plan.totals.chapters} chapter(s)")
        created = await rt.kube.create_job(jobs.renderer_job(owner, spec, plan, rt.settings))
    except ApiException as exc:
        if exc.status in (400, 403, 422):
            raise Refused("CreateFailed", f"cannot create the children: {exc.reason}: {body_text(exc)}") from exc
        raise kopf.TemporaryError(f"cannot create the children ({exc.status} {exc.reason}); retrying", delay=5) from exc
    rt.plans[(ns, name)] = (str(owner["metadata"]["uid"]), plan)
    if created:
        await rt.kube.event(owner, "JobCreated", f"Job {names.job_child_name(name)}: {spec.parallelism} renderer(s)")
        log.info("ttsjob %s/%s: created Job %s", ns, name, names.job_child_name(name))
    await rt.kube.patch_status(names.JOB_PLURAL, ns, name, jobs.pending_status(owner, plan, now_iso()).patch())


@kopf.on.resume(names.GROUP, names.VERSION, names.JOB_PLURAL)
@kopf.on.create(names.GROUP, names.VERSION, names.JOB_PLURAL)
async def reconcile_job(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    owner = dict(body)
    if jobs.is_finished(owner.get("status")):
        return
    rt = runtime_of(memo)
    try:
        await start(rt, owner, retry)
    except Refused as exc:
        await fail(rt, owner, exc.reason, exc.message)


async def plan_of(rt: Runtime, owner: dict[str, Any]) -> Plan | None:
    """The job's plan: remembered, else read back from its ConfigMap (after a restart)."""
    ns, name = key_of(owner)
    uid = str(owner["metadata"]["uid"])
    known = rt.plans.get((ns, name))
    if known is not None and known[0] == uid:
        return known[1]
    data = await rt.kube.read_key(ns, "configMapKeyRef", names.job_plan_name(name), names.PLAN_KEY)
    if data is None:
        return None
    plan = load_plan(data)
    rt.plans[(ns, name)] = (uid, plan)
    return plan


async def refresh(rt: Runtime, owner: dict[str, Any]) -> TtsJobStatus | None:
    """Compute and patch the status; None when there is nothing to report yet (no plan, no Job)."""
    ns, name = key_of(owner)
    plan = await plan_of(rt, owner)
    job = await rt.kube.get_job(ns, names.job_child_name(name))
    if plan is None or job is None:
        return None
    pods = await rt.kube.list_pods(ns, names.selector_string(names.renderer_labels(name)))
    files = None
    spec = owner.get("spec") or {}
    uid = str(owner["metadata"]["uid"])
    if not (spec.get("storage") or {}).get("claimName"):
        known = rt.counted.get((ns, name))
        counted = known[1] if known is not None and known[0] == uid else {}
        rt.counted[(ns, name)] = (uid, counted)
        files = await asyncio.to_thread(job_files.scan_mounted, rt.settings.jobs_root, plan, counted)
    new = jobs.job_status(owner, plan, job, pods, files, time.time())
    if new.phase in (Phase.COMPLETE, Phase.FAILED):  # no more polls: forget what they needed
        rt.counted.pop((ns, name), None)
        rt.plans.pop((ns, name), None)
    current = owner.get("status") or {}
    patch = new.patch()
    if changed(current, patch):
        await rt.kube.patch_status(names.JOB_PLURAL, ns, name, patch)
        await announce(rt, owner, current, new)
    return new


async def announce(rt: Runtime, owner: dict[str, Any], before: dict[str, Any], after: TtsJobStatus) -> None:
    """``Completed`` or ``Failed`` events when the job finishes."""
    if before.get("phase") == after.phase:
        return
    ready = next((c for c in after.conditions if c.type == "Ready"), None)
    if after.phase == "Complete" and ready is not None:
        await rt.kube.event(owner, "Completed", f"{ready.message} in {after.duration}")
    elif after.phase == "Failed" and ready is not None:
        await rt.kube.event(owner, "Failed", f"{ready.reason}: {ready.message}", warning=True)


def _running(status: kopf.Status, **_: Any) -> bool:
    return not jobs.is_finished(dict(status))


@kopf.timer(names.GROUP, names.VERSION, names.JOB_PLURAL, interval=POLL_SECONDS, when=_running)
async def poll_job(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = dict(body)
    if owner["metadata"].get("deletionTimestamp"):
        return
    await refresh(runtime_of(memo), owner)


def _discarded(spec: kopf.Spec, **_: Any) -> bool:
    """Files to delete with the TtsJob: ``retain: false`` on the platform's jobs volume."""
    return spec.get("retain") is False and not (spec.get("storage") or {}).get("claimName")


@kopf.on.delete(names.GROUP, names.VERSION, names.JOB_PLURAL, when=_discarded)
async def delete_files(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The finalizer of a ``retain: false`` TtsJob: its directory on the jobs volume goes with it."""
    rt = runtime_of(memo)
    ns, name = key_of(body)
    rt.plans.pop((ns, name), None)
    rt.counted.pop((ns, name), None)
    storage = (body.get("spec") or {}).get("storage") or {}
    directory = storage.get("path") or f"{ns}/{name}"
    root: Path = rt.settings.jobs_root
    removed = await asyncio.to_thread(job_files.remove_job_dir, root, directory)
    log.info("ttsjob %s/%s: files under %s/%s %s", ns, name, root, directory, "deleted" if removed else "not found")
