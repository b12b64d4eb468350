"""TtsJobs on the local cluster (ADR 0050): the operator turns the example podcast into its plan
ConfigMap and an Indexed Job of renderer pods that pass the restricted Pod Security level as the
renderer ServiceAccount; bad scripts and unknown deployments end Failed naming the line or field; the
two-role job renders to a chapter whose length is its chunks' plus its pauses; and a job survives a
renderer pod deleted and the operator SIGKILLed mid-way without a chunk being requested twice.

The TtsJobs live in the platform's namespace, where the router, the jobs volume and the renderers'
key are (the namespace enforces the restricted level, so a renderer pod that exists passed it).
"""

from __future__ import annotations

import base64
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tts_crds.plan import Plan, load_plan
from tts_devcluster import platform

from tests.helpers import eventually
from tests.listen import listener, wer

from .conftest import Kube, Models, Router, wait_router_sees

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ttsjob-podcast.yaml"
ESPEAK = {"engine": "espeak", "model": {"uri": "package://espeakng-loader"}}
RENDERER_SA = "kube-tts-renderer"
FINISHED = ("Complete", "Failed")


@pytest.fixture(scope="module")
def voices(models: Models, router: Router) -> tuple[str, str]:
    """A piper model (Alice) and an espeak model (Bob) of this module's own."""
    joe = models.create("jobs-joe")
    espeak = models.create("jobs-espeak", **ESPEAK)
    wait_router_sees(router, joe)
    wait_router_sees(router, espeak)
    return joe, espeak


@pytest.fixture
def ttsjobs(kube: Kube, router: Router):
    """Names of the TtsJobs a test creates; deleted afterwards (their children go with them)."""
    created: list[str] = []
    yield created
    for name in created:
        kube.run("delete", "ttsjob", name, "-n", router.namespace, "--wait=false", check=False)


def podcast(name: str, joe: str, espeak: str, **spec: Any) -> dict[str, Any]:
    """examples/ttsjob-podcast.yaml, named ``name``, on this module's models."""
    obj = yaml.safe_load(EXAMPLE.read_text())
    obj["metadata"]["name"] = name
    obj["spec"]["deployment"] = joe
    obj["spec"]["roles"]["Bob"]["deployment"] = espeak
    obj["spec"].update(spec)
    return obj


def create(kube: Kube, router: Router, ttsjobs: list[str], obj: dict[str, Any]) -> str:
    kube.apply(obj, router.namespace)
    ttsjobs.append(obj["metadata"]["name"])
    return str(obj["metadata"]["name"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def status_of(kube: Kube, router: Router, name: str) -> dict[str, Any]:
    return (kube.get("ttsjob", name, router.namespace) or {}).get("status") or {}


def wait_finished(kube: Kube, router: Router, name: str, timeout: float) -> dict[str, Any]:
    try:
        return eventually(
            lambda: (s := status_of(kube, router, name)).get("phase") in FINISHED and s,
            timeout=timeout,
            interval=1,
            what=f"TtsJob {name} to finish",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnosis(kube, router, name)}") from None


def diagnosis(kube: Kube, router: Router, name: str) -> str:
    """What the TtsJob, its Job and its renderer pods say, for a failure's message."""
    ns = router.namespace
    out = [
        f"status: {status_of(kube, router, name)}",
        f"job: {(kube.get('job', f'ttsjob-{name}', ns) or {}).get('status')}",
    ]
    for pod in kube.list("pods", ns, f"tts.kubetts.io/job={name}"):
        pod_name = pod["metadata"]["name"]
        logs = kube.run("logs", pod_name, "-n", ns, "--tail=15", check=False)
        out.append(f"pod {pod_name} {pod['status'].get('phase')}:\n{logs.stdout}{logs.stderr}")
    return "\n".join(out)


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == ctype)


def plan_in(kube: Kube, router: Router, name: str) -> Plan:
    cm = kube.get("configmap", f"ttsjob-{name}-plan", router.namespace)
    assert cm, f"no plan ConfigMap for {name}"
    return load_plan(base64.b64decode(cm["binaryData"]["plan.json.gz"]))


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r["uid"] == owner["metadata"]["uid"] and r["kind"] == "TtsJob" and r.get("controller") for r in refs)


# --- (a) the children ----------------------------------------------------------------------


def test_the_podcast_makes_its_plan_and_an_indexed_job_of_restricted_renderers(
    kube: Kube, router: Router, voices: tuple[str, str], ttsjobs: list[str]
):
    joe, espeak = voices
    name = create(kube, router, ttsjobs, podcast(unique("podcast"), joe, espeak))
    ns = router.namespace
    owner = kube.get("ttsjob", name, ns)
    assert owner

    cm = eventually(lambda: kube.get("configmap", f"ttsjob-{name}-plan", ns), timeout=30, what="the plan ConfigMap")
    assert owned_by(cm, owner)
    plan = plan_in(kube, router, name)
    assert (plan.totals.chapters, plan.totals.chunks) == (1, 4)
    assert {c.model for c in plan.chunks()} == {joe, espeak}

    job = eventually(lambda: kube.get("job", f"ttsjob-{name}", ns), timeout=30, what="the renderer Job")
    assert owned_by(job, owner)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]

    # the namespace enforces `restricted`: pods that were admitted passed it
    pods = eventually(
        lambda: len(p := kube.list("pods", ns, f"tts.kubetts.io/job={name}")) >= 2 and p,
        timeout=60,
        what="two renderer pods",
    )
    ns_labels = kube.get("namespace", ns)["metadata"]["labels"]
    assert ns_labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == RENDERER_SA
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    # the renderers' ServiceAccount may do nothing with the Kubernetes API
    can = kube.run(
        "auth", "can-i", "get", "pods", "-n", ns, f"--as=system:serviceaccount:{ns}:{RENDERER_SA}", check=False
    )
    assert can.stdout.strip() == "no", can.stdout + can.stderr

    # kubectl get ttsj shows the phase and the progress
    def columns() -> list[str] | None:
        out = kube.run("get", "ttsj", name, "-n", ns).stdout.splitlines()
        return out if len(out) == 2 and "chunks" in out[1] else None

    header, row = eventually(columns, timeout=30, what="a Progress column")
    assert header.split()[:3] == ["NAME", "PHASE", "PROGRESS"]
    assert row.split()[1] in ("Pending", "Rendering", "Joining", "Complete"), row
    assert "/4 chunks" in row


# --- (b) specs that cannot run ---------------------------------------------------------------


def test_a_role_missing_from_roles_fails_naming_the_line(
    kube: Kube, router: Router, voices: tuple[str, str], ttsjobs: list[str]
):
    joe, espeak = voices
    text = "Alice: Hello.\nBob: Hi.\nCarol: Who am I?\n"
    name = create(kube, router, ttsjobs, podcast(unique("badscript"), joe, espeak, text=text))
    status = wait_finished(kube, router, name, timeout=30)
    failed = condition(status, "Failed")
    assert (status["phase"], failed["status"], failed["reason"]) == ("Failed", "True", "InvalidScript")
    assert "spec.text" in failed["message"] and "line 3" in failed["message"] and "Carol" in failed["message"]
    assert condition(status, "Ready")["reason"] == "InvalidScript"
    assert kube.get("job", f"ttsjob-{name}", router.namespace) is None
    assert kube.get("configmap", f"ttsjob-{name}-plan", router.namespace) is None
    reasons = {e["reason"] for e in kube.events(router.namespace, name)}
    assert "InvalidScript" in reasons


def test_an_unknown_deployment_fails_naming_the_field(
    kube: Kube, router: Router, voices: tuple[str, str], ttsjobs: list[str]
):
    joe, _ = voices
    name = create(kube, router, ttsjobs, podcast(unique("nodeploy"), joe, "no-such-model"))
    status = wait_finished(kube, router, name, timeout=30)
    failed = condition(status, "Failed")
    assert failed["reason"] == "DeploymentNotFound"
    assert failed["message"].startswith("spec.roles.Bob.deployment:") and "no-such-model" in failed["message"]
    assert kube.get("job", f"ttsjob-{name}", router.namespace) is None


def test_an_unknown_role_voice_fails_with_the_routers_words_naming_the_role(
    kube: Kube, router: Router, voices: tuple[str, str], ttsjobs: list[str]
):
    """The voice is the router's to judge: its refusal stops the Job at once (exit 2, podFailurePolicy)."""
    joe, espeak = voices
    obj = podcast(unique("novoice"), joe, espeak)
    obj["spec"]["roles"]["Bob"]["voice"] = "nobody-here"
    name = create(kube, router, ttsjobs, obj)
    status = wait_finished(kube, router, name, timeout=120)
    failed = condition(status, "Failed")
    assert (status["phase"], failed["reason"]) == ("Failed", "RenderRefused"), status
    assert failed["message"].startswith("spec.roles.Bob: chunk "), failed["message"]
    assert "nobody-here" in failed["message"] and "HTTP 4" in failed["message"], failed["message"]
    job = kube.get("job", f"ttsjob-{name}", router.namespace)
    assert job is not None and job["status"].get("failed", 0) <= 2, job["status"]  # no retries of a refusal


# --- (c) rendering to the end ----------------------------------------------------------------


def pauses_seconds(plan: Plan, lead_ms: int) -> float:
    return sum(c.pause_after_ms for c in plan.chunks()) / 1000 + lead_ms * len(plan.chapters) / 1000


def test_the_two_role_podcast_completes_with_its_chapter_as_long_as_chunks_and_pauses(
    kube: Kube, router: Router, voices: tuple[str, str], ttsjobs: list[str]
):
    joe, espeak = voices
    name = create(kube, router, ttsjobs, podcast(unique("render"), joe, espeak, format="wav"))
    t0 = time.monotonic()
    status = wait_finished(kube, router, name, timeout=240)
    took = time.monotonic() - t0
    assert status["phase"] == "Complete", status
    assert condition(status, "Complete")["status"] == "True"
    plan = plan_in(kube, router, name)
    progress = status["progress"]
    assert (progress["chunksDone"], progress["chunksTotal"]) == (4, 4)
    assert progress["summary"] == "4/4 chunks (100%)"
    (chapter,) = status["chapters"]
    assert chapter["file"] == f"{router.namespace}/{name}/chapters/001.wav"
    expected = progress["audioSeconds"] + pauses_seconds(plan, 0)
    assert chapter["durationSeconds"] == pytest.approx(expected, rel=0.01)
    assert status["startTime"] and status["completionTime"] and status["duration"]
    reasons = [e["reason"] for e in kube.events(router.namespace, name)]
    assert {"PlanBuilt", "JobCreated", "Completed"} <= set(reasons)
    # both voices are heard in the joined file: Whisper hears the whole script (Bob, espeak, says
    # nearly half its words, so a missing or garbled role fails this)
    spoken = " ".join(c.text for c in plan.chunks())
    heard = listener().transcribe((jobs_volume(kube, router) / chapter["file"]).read_bytes(), "en")
    score = wer(spoken, heard)
    print(
        f"\n{name}: Complete {took:.1f} s after it was applied ({status['duration']} by its Job), "
        f"{chapter['durationSeconds']:.2f} s of audio; WER {score:.3f} of the joined chapter"
    )
    assert score <= 0.2, (spoken, heard)


def jobs_volume(kube: Kube, router: Router) -> Path:
    """Where the local cluster keeps the jobs volume (a hostPath PersistentVolume, ADR 0051)."""
    claim = kube.get("pvc", "kube-tts-jobs", router.namespace)
    assert claim, "the chart's jobs volume"
    pv = kube.get("pv", claim["spec"]["volumeName"])
    return Path(pv["spec"]["hostPath"]["path"])


def test_a_job_that_keeps_nothing_takes_its_files_with_it(
    kube: Kube, router: Router, voices: tuple[str, str], ttsjobs: list[str]
):
    joe, espeak = voices
    text = "Alice: One short line.\nBob: And its answer."
    name = create(kube, router, ttsjobs, podcast(unique("discard"), joe, espeak, text=text, retain=False, format="wav"))
    status = wait_finished(kube, router, name, timeout=180)
    assert status["phase"] == "Complete", status
    files = jobs_volume(kube, router) / router.namespace / name
    assert (files / "chapters" / "001.wav").is_file()
    kube.run("delete", "ttsjob", name, "-n", router.namespace, "--timeout=60s")
    assert not files.exists(), "retain: false left its files"


def test_a_job_wakes_its_model_from_zero(kube: Kube, router: Router, models: Models, ttsjobs: list[str]):
    """The renderers ask the router, which holds their requests and wakes the model (issue 17, test 3)."""
    asleep = models.create("jobs-asleep", wait_ready=False, replicas=0, minReplicas=0, **ESPEAK)
    wait_router_sees(router, asleep, ready=False)
    assert not kube.list("pods", router.namespace, f"tts.kubetts.io/deployment={asleep}")
    obj = {
        "apiVersion": "tts.kubetts.io/v1alpha1",
        "kind": "TtsJob",
        "metadata": {"name": unique("wake")},
        "spec": {
            "deployment": asleep,
            "voice": "en-us",
            "text": "Good morning. This model was asleep.",
            "format": "wav",
        },
    }
    name = create(kube, router, ttsjobs, obj)
    status = wait_finished(kube, router, name, timeout=240)
    assert status["phase"] == "Complete", status
    assert (kube.get("ttsdeployment", asleep, router.namespace) or {})["spec"]["replicas"] >= 1
    (chapter,) = status["chapters"]
    assert chapter["durationSeconds"] > 1.0, chapter


# --- (d) disruption ----------------------------------------------------------------------------


def requests_by_code(router: Router, model: str) -> dict[str, float]:
    """The router's speech requests for ``model`` so far, by final status code."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{router.url}/metrics", timeout=10).text
    return {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "kubetts_router_requests_total" and sample.labels.get("deployment") == model
    }


def test_a_deleted_renderer_and_a_killed_operator_still_complete_without_repeating_chunks(
    kube: Kube, router: Router, voices: tuple[str, str], ttsjobs: list[str], layout
):
    joe, espeak = voices
    # long enough that the disruptions land mid-job: 30 lines of Alice, 30 of Bob
    lines = [
        f"{'Alice' if i % 2 == 0 else 'Bob'}: This is line {i} of a long and winding conversation." for i in range(60)
    ]
    name = create(
        kube,
        router,
        ttsjobs,
        podcast(unique("survive"), joe, espeak, text="\n".join(lines), format="wav", parallelism=2),
    )
    ns = router.namespace
    before = {m: requests_by_code(router, m) for m in (joe, espeak)}
    eventually(
        lambda: (status_of(kube, router, name).get("progress") or {}).get("chunksDone", 0) >= 5,
        timeout=180,
        interval=0.5,
        what="some chunks done",
    )
    pods = [p for p in kube.list("pods", ns, f"tts.kubetts.io/job={name}") if p["status"].get("phase") == "Running"]
    assert pods, "no renderer running"
    kube.run("delete", "pod", pods[0]["metadata"]["name"], "-n", ns, "--wait=false")
    pid = platform.component_pid(layout, "operator")
    assert pid, "the operator runs"
    os.kill(pid, signal.SIGKILL)
    status = wait_finished(kube, router, name, timeout=300)
    assert status["phase"] == "Complete", status
    plan = plan_in(kube, router, name)
    per_model = {m: sum(1 for c in plan.chunks() if c.model == m) for m in (joe, espeak)}
    after = {m: requests_by_code(router, m) for m in (joe, espeak)}
    asked = {m: sum(after[m].values()) - sum(before[m].values()) for m in (joe, espeak)}
    # a chunk in flight in the deleted pod may be asked again (at most the pod's concurrency); every
    # chunk that was written is never asked again
    for model in (joe, espeak):
        assert per_model[model] <= asked[model] <= per_model[model] + 2, (
            f"{model}: asked {asked}, chunks {per_model}; by code before {before}, after {after}\n"
            + diagnosis(kube, router, name)
        )
    assert status["progress"]["chunksDone"] == plan.totals.chunks
    print(
        f"\n{name}: {plan.totals.chunks} chunks, {sum(asked.values()):.0f} speech requests, Complete after a "
        "deleted renderer and a SIGKILLed operator"
    )
