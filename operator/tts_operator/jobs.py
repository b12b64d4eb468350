"""A TtsJob's children and status (ADR 0050; pure functions, unit-tested without a cluster).

The operator turns a TtsJob into two children, both owned by it (a controller reference, so deleting
the TtsJob garbage-collects them): the plan ConfigMap ``ttsjob-<name>-plan`` (the gzipped plan under
``binaryData``) and the Indexed ``batch/v1`` Job ``ttsjob-<name>`` whose pods render it. Its status
comes from the Job's status, the renderer pods (for a refused render's message) and what the operator
found on the jobs volume (:class:`Files`, counted by :mod:`.job_files`).
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any

from tts_crds import names
from tts_crds.jobs import ChapterStatus, JobProgress, Phase, TtsJobSpec, TtsJobStatus
from tts_crds.models import parse_spec
from tts_crds.plan import Plan, PlanError, ScriptError, plan_bytes
from tts_crds.times import iso, parse_time

from .children import owner_reference, restricted_container_security, restricted_pod_security
from .settings import OperatorSettings
from .status import conditions_of, set_condition

JSON = dict[str, Any]

FINISHED = (Phase.COMPLETE.value, Phase.FAILED.value)
# the renderer only talks to the router and writes files: a small, fixed share per pod
RENDERER_RESOURCES: JSON = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def job_spec(owner: JSON) -> TtsJobSpec:
    """The one parse of a TtsJob's spec; ``InvalidSpec`` names the field."""
    return parse_spec(TtsJobSpec, owner.get("spec"))


def is_finished(status: JSON | None) -> bool:
    return (status or {}).get("phase") in FINISHED


def plan_failure_reason(error: PlanError) -> str:
    """``InvalidScript`` for a bad script (a line, a role), else ``InvalidText`` (empty, too large)."""
    if isinstance(error, ScriptError) or error.field.startswith(("spec.script", "spec.roles")):
        return "InvalidScript"
    return "InvalidText"


def missing_deployments(spec: TtsJobSpec, existing: set[str]) -> list[tuple[str, str]]:
    """(field, TtsDeployment) for each deployment the spec names that is not in ``existing``."""
    wanted = [("spec.deployment", spec.deployment)]
    roles = (spec.roles or {}).items()
    wanted += [(f"spec.roles.{role}.deployment", r.deployment) for role, r in roles if r.deployment]
    return [(where, name) for where, name in wanted if name not in existing]


def uses_default_claim(spec: TtsJobSpec) -> bool:
    """Whether the job's files go to the platform's jobs volume (which the operator has mounted)."""
    return not spec.storage.claim_name


# --- children ------------------------------------------------------------------------------


def child_metadata(owner: JSON, name: str) -> JSON:
    job = owner["metadata"]["name"]
    return {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": names.renderer_labels(job),
        "ownerReferences": [owner_reference(owner, names.JOB_KIND)],
    }


def plan_config_map(owner: JSON, plan: Plan) -> JSON:
    """The ConfigMap the renderer pods read their plan from (``PlanError`` when it would not fit one)."""
    data = base64.b64encode(plan_bytes(plan)).decode()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(owner, names.job_plan_name(owner["metadata"]["name"])),
        # the plan never changes under a running Job: a new plan is a new TtsJob
        "immutable": True,
        "binaryData": {names.PLAN_KEY: data},
    }


def renderer_env(spec: TtsJobSpec, plan: Plan, settings: OperatorSettings) -> list[JSON]:
    """The renderer's environment (ADR 0050's table); ``JOB_COMPLETION_INDEX`` is Kubernetes's own."""
    secret, key = settings.renderer_key
    return [
        {"name": "KUBETTS_URL", "value": settings.router_url},
        {"name": "KUBETTS_API_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}},
        {"name": "KUBETTS_JOB_PLAN", "value": f"{names.PLAN_MOUNT_PATH}/{names.PLAN_KEY}"},
        {"name": "KUBETTS_JOB_ROOT", "value": f"{names.JOBS_MOUNT_PATH}/{plan.dir}"},
        {"name": "KUBETTS_JOB_SHARDS", "value": str(spec.parallelism)},
        {"name": "KUBETTS_JOB_CONCURRENCY", "value": str(settings.renderer_concurrency)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]


def renderer_pod_spec(owner: JSON, spec: TtsJobSpec, plan: Plan, settings: OperatorSettings) -> JSON:
    job = owner["metadata"]["name"]
    claim = spec.storage.claim_name or settings.jobs_claim
    return {
        # a failed pod stays for its termination message; the Job's backoff makes the retry pod
        "restartPolicy": "Never",
        "serviceAccountName": settings.renderer_service_account,
        # renderers never talk to the Kubernetes API (their ServiceAccount has no Role either)
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 10,
        "securityContext": restricted_pod_security(),
        "containers": [
            {
                "name": names.RENDERER_CONTAINER,
                "image": settings.renderer_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-m", "tts_render"],
                "env": renderer_env(spec, plan, settings),
                "resources": RENDERER_RESOURCES,
                "securityContext": restricted_container_security(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "plan", "mountPath": names.PLAN_MOUNT_PATH, "readOnly": True},
                    {"name": "jobs", "mountPath": names.JOBS_MOUNT_PATH},
                ],
            }
        ],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "plan", "configMap": {"name": names.job_plan_name(job)}},
            {"name": "jobs", "persistentVolumeClaim": {"claimName": claim}},
        ],
    }


def renderer_job(owner: JSON, spec: TtsJobSpec, plan: Plan, settings: OperatorSettings) -> JSON:
    """The Indexed Job: ``parallelism`` pods, pod ``k`` rendering ``shard(plan, k, parallelism)``.

    Exit code 2 (the router refused the work; waiting cannot heal it) fails the Job at once; a pod
    evicted or preempted (``DisruptionTarget``) does not count against ``backoffLimit``.
    """
    job = owner["metadata"]["name"]
    labels = names.renderer_labels(job)
    out: JSON = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(owner, names.job_child_name(job)),
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.parallelism,
            "parallelism": spec.parallelism,
            "backoffLimit": spec.backoff_limit,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": names.RENDERER_CONTAINER,
                            "operator": "In",
                            "values": [names.RENDER_REFUSED_EXIT_CODE],
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": renderer_pod_spec(owner, spec, plan, settings)},
        },
    }
    if spec.active_deadline_seconds is not None:
        out["spec"]["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return out


# --- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Files:
    """What the operator found of a job on the jobs volume (chunks and chapters of the current plan)."""

    chunks_done: int = 0
    characters_done: int = 0
    audio_seconds: float = 0.0
    chapters: list[ChapterStatus] = field(default_factory=list)


def human_duration(seconds: float) -> str:
    """``3m12s``, ``1h0m5s``, ``45s``: what kubectl shows for ages."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def summary(chunks_done: int, chunks_total: int, chapters_done: int, chapters_total: int) -> str:
    """``12/40 chunks (30%)``; once every chunk is done and chapters are left, the chapters too."""
    percent = math.floor(100 * chunks_done / chunks_total) if chunks_total else 100
    out = f"{chunks_done}/{chunks_total} chunks ({percent}%)"
    if chunks_total and chunks_done >= chunks_total and chapters_done < chapters_total:
        out += f", {chapters_done}/{chapters_total} chapters joined"
    return out


def refusal(pods: list[JSON]) -> str | None:
    """The termination message of a renderer that exited 2 (the router refused the work), if any."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != names.RENDERER_CONTAINER:
                continue
            terminated = (cs.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") == names.RENDER_REFUSED_EXIT_CODE:
                return str(terminated.get("message") or "the router refused the work").strip()
    return None


_REFUSED_CHUNK = re.compile(r"^chunk (\d{3}-\d{5}):")


def refused_field(plan: Plan, message: str) -> str:
    """The renderer's refusal ("chunk 001-00002: the router refused it …") prefixed with the field
    that chose the refused chunk's voice and model: ``spec.roles.Bob`` for a role's line, ``spec``
    (deployment and voice) for prose."""
    m = _REFUSED_CHUNK.match(message)
    chunk = next((c for c in plan.chunks() if m and c.id == m.group(1)), None)
    if chunk is None:
        return message
    return f"{f'spec.roles.{chunk.role}' if chunk.role else 'spec'}: {message}"


def _job_condition(job: JSON | None, ctype: str) -> JSON | None:
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return dict(cond)
    return None


def _eta(done: int, total: int, elapsed: float | None) -> int | None:
    """Seconds left at the rate so far (characters per second of wall time)."""
    if not done or elapsed is None or elapsed <= 0 or done >= total:
        return None
    return round(elapsed * (total - done) / done)


Verdict = tuple[Phase, str, str]  # (phase, reason, message)


def _verdict(plan: Plan, job: JSON | None, pods: list[JSON], files: Files | None, progress: JobProgress) -> Verdict:
    failed = _job_condition(job, "Failed")
    if failed is not None:
        refused = refusal(pods)
        if refused is not None:
            return (Phase.FAILED, "RenderRefused", refused_field(plan, refused))
        reason = str(failed.get("reason") or "RenderFailed")
        return (Phase.FAILED, reason, str(failed.get("message") or "the renderer Job failed"))
    if _job_condition(job, "Complete") is not None:
        return (Phase.COMPLETE, "Complete", f"{plan.totals.chapters} chapter file(s), {progress.audio_seconds:.1f} s")
    st = (job or {}).get("status") or {}
    failures = int(st.get("failed") or 0)
    retrying = f"; {failures} renderer pod(s) failed so far, the Job retries them" if failures else ""
    if files is not None and progress.chunks_done >= progress.chunks_total:
        return (Phase.JOINING, "Joining", progress.summary + retrying)
    if int(st.get("ready") or 0) > 0 or progress.chunks_done > 0:
        return (Phase.RENDERING, "Rendering", progress.summary + retrying)
    return (Phase.PENDING, "Pending", "the renderer Job is created; no renderer runs yet" + retrying)


def job_status(
    owner: JSON, plan: Plan, job: JSON | None, pods: list[JSON], files: Files | None, now: float
) -> TtsJobStatus:
    """The status of ``owner`` from its Job (None: not seen yet), renderer pods and files on the
    volume (None: on a claim the operator has not mounted, so chunks count only when the Job is done).
    ``.patch()`` is the body."""
    gen = owner["metadata"].get("generation")
    st = (job or {}).get("status") or {}
    totals = plan.totals
    complete = _job_condition(job, "Complete") is not None
    if files is None:  # a claim of the user's own: the Job's own state is all there is
        chunks_done = totals.chunks if complete else 0
        characters_done = totals.characters if complete else 0
        audio, chapters = 0.0, []
    else:
        chunks_done, characters_done = files.chunks_done, files.characters_done
        audio, chapters = files.audio_seconds, files.chapters
    start = parse_time(st.get("startTime"))
    end_at = st.get("completionTime") or ((_job_condition(job, "Failed") or {}).get("lastTransitionTime"))
    end = parse_time(end_at) if end_at else None
    elapsed = ((end or now) - start) if start is not None else None
    progress = JobProgress(
        characters_done=characters_done,
        characters_total=totals.characters,
        chunks_done=chunks_done,
        chunks_total=totals.chunks,
        chapters_done=len(chapters) if files is not None else (totals.chapters if complete else 0),
        chapters_total=totals.chapters,
        audio_seconds=round(audio, 3),
        eta_seconds=_eta(characters_done, totals.characters, elapsed),
        summary=summary(chunks_done, totals.chunks, len(chapters), totals.chapters),
    )
    phase, reason, message = _verdict(plan, job, pods, files, progress)
    out = TtsJobStatus(
        observed_generation=gen,
        phase=phase,
        job_name=names.job_child_name(owner["metadata"]["name"]),
        progress=progress,
        chapters=chapters,
        conditions=job_conditions(owner, phase, reason, message, iso(now)),
    )
    if start is not None:
        out.start_time = iso(start)
        out.duration = human_duration(elapsed or 0)
    if phase == Phase.COMPLETE and end is not None:
        out.completion_time = iso(end)
    return out


def job_conditions(owner: JSON, phase: Phase, reason: str, message: str, at: str) -> list[Any]:
    """Ready (True only once Complete; else False with the phase or failure as reason), Complete, Failed."""
    gen = owner["metadata"].get("generation")
    conditions = conditions_of(owner.get("status"))
    done, failed = phase == Phase.COMPLETE, phase == Phase.FAILED
    verdicts = {
        "Ready": (done, reason, message),
        "Complete": (done, reason, message),
        "Failed": (failed, reason if failed else "AsExpected", message if failed else ""),
    }
    for ctype, (ok, why, text) in verdicts.items():
        conditions = set_condition(conditions, ctype, ok, why, text, gen, at)
    return conditions


def failed_status(owner: JSON, reason: str, message: str, at: str) -> TtsJobStatus:
    """A TtsJob that cannot run (``InvalidScript``, ``InvalidText``, ``DeploymentNotFound``, …): nothing
    was created; the message names the field."""
    return TtsJobStatus(
        observed_generation=owner["metadata"].get("generation"),
        phase=Phase.FAILED,
        conditions=job_conditions(owner, Phase.FAILED, reason, message, at),
    )


def pending_status(owner: JSON, plan: Plan, at: str) -> TtsJobStatus:
    """Just after the Job is created: the plan's totals and nothing done yet."""
    totals = plan.totals
    message = "the renderer Job is created; no renderer runs yet"
    return TtsJobStatus(
        observed_generation=owner["metadata"].get("generation"),
        phase=Phase.PENDING,
        job_name=names.job_child_name(owner["metadata"]["name"]),
        progress=JobProgress(
            characters_total=totals.characters,
            chunks_total=totals.chunks,
            chapters_total=totals.chapters,
            summary=summary(0, totals.chunks, 0, totals.chapters),
        ),
        conditions=job_conditions(owner, Phase.PENDING, "Pending", message, at),
    )
