"""The TtsJob controller's pure parts: the plan ConfigMap, the Indexed Job, the status; and the file count."""

import base64
import json
from pathlib import Path

import pytest
from tts_crds import names
from tts_crds.jobs import TtsJobSpec
from tts_crds.plan import PlanError, ScriptError, build_plan, chapter_source, load_plan
from tts_crds.times import parse_time
from tts_operator import children, job_files, jobs
from tts_operator.settings import OperatorSettings

OWNER = {
    "apiVersion": names.API_VERSION,
    "kind": names.JOB_KIND,
    "metadata": {"name": "podcast", "namespace": "tts", "uid": "u-9", "generation": 1},
    "spec": {},
}
SCRIPT = "Alice: Hello Bob. How are you?\nBob: Fine, thanks.\n[pause 800ms]\nAlice: Good."
ROLES = {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}}
SETTINGS = OperatorSettings(
    renderer_image="router:1",
    renderer_service_account="kt-renderer",
    renderer_key_secret="kt-renderer-key/api-key",
    jobs_claim="kt-jobs",
    router_url="http://kt-router.tts.svc:8080",
)
T0 = parse_time("2026-12-03T11:00:00Z") or 0.0


def spec(**extra):
    body = {"deployment": "joe", "textFormat": "script", "text": SCRIPT, "roles": ROLES, "parallelism": 2, **extra}
    return TtsJobSpec.model_validate(body)


def plan_of(s=None):
    return build_plan(s or spec(), None, name="podcast", namespace="tts", uid="u-9")


def pod_spec(job):
    return job["spec"]["template"]["spec"]


def test_plan_config_map_holds_the_gzipped_plan_and_is_owned_by_the_ttsjob():
    plan = plan_of()
    cm = jobs.plan_config_map(OWNER, plan)
    assert cm["metadata"]["name"] == "ttsjob-podcast-plan"
    assert load_plan(base64.b64decode(cm["binaryData"][names.PLAN_KEY])) == plan
    ref = cm["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("TtsJob", "podcast", "u-9", True)
    assert cm["metadata"]["labels"] == names.renderer_labels("podcast")


def test_the_job_is_indexed_with_parallelism_backoff_deadline_and_failure_policy():
    job = jobs.renderer_job(OWNER, spec(backoffLimit=3, activeDeadlineSeconds=600), plan_of(), SETTINGS)
    assert job["metadata"]["name"] == "ttsjob-podcast"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TtsJob"
    s = job["spec"]
    assert (s["completionMode"], s["completions"], s["parallelism"]) == ("Indexed", 2, 2)
    assert (s["backoffLimit"], s["activeDeadlineSeconds"]) == (3, 600)
    rules = s["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "render", "operator": "In", "values": [2]},
    }
    assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert job["metadata"]["labels"] == s["template"]["metadata"]["labels"] == names.renderer_labels("podcast")
    assert "activeDeadlineSeconds" not in jobs.renderer_job(OWNER, spec(), plan_of(), SETTINGS)["spec"]


def test_renderer_pods_are_restricted_tokenless_and_read_their_plan_and_claim():
    pod = pod_spec(jobs.renderer_job(OWNER, spec(), plan_of(), SETTINGS))
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "kt-renderer"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == children.restricted_pod_security()
    (c,) = pod["containers"]
    assert c["securityContext"] == children.restricted_container_security()
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert (c["image"], c["command"]) == ("router:1", ["python", "-m", "tts_render"])
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert mounts["plan"] == {"name": "plan", "mountPath": "/etc/kube-tts/plan", "readOnly": True}
    assert mounts["jobs"]["mountPath"] == "/var/lib/kube-tts/jobs"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["plan"]["configMap"] == {"name": "ttsjob-podcast-plan"}
    assert volumes["jobs"]["persistentVolumeClaim"] == {"claimName": "kt-jobs"}
    assert "emptyDir" in volumes["tmp"]


def test_renderer_environment_follows_the_adr_table():
    c = pod_spec(jobs.renderer_job(OWNER, spec(), plan_of(), SETTINGS))["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["KUBETTS_URL"]["value"] == "http://kt-router.tts.svc:8080"
    assert env["KUBETTS_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "kt-renderer-key", "key": "api-key"}}
    assert "value" not in env["KUBETTS_API_KEY"]  # never the key itself
    assert env["KUBETTS_JOB_PLAN"]["value"] == "/etc/kube-tts/plan/plan.json.gz"
    assert env["KUBETTS_JOB_ROOT"]["value"] == "/var/lib/kube-tts/jobs/tts/podcast"
    assert env["KUBETTS_JOB_SHARDS"]["value"] == "2"
    assert env["KUBETTS_JOB_CONCURRENCY"]["value"] == "2"


def test_a_claim_and_path_of_the_users_own_are_used():
    s = spec(storage={"claimName": "books", "path": "shelf/one"})
    pod = pod_spec(jobs.renderer_job(OWNER, s, plan_of(s), SETTINGS))
    assert {v["name"]: v for v in pod["volumes"]}["jobs"]["persistentVolumeClaim"] == {"claimName": "books"}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["KUBETTS_JOB_ROOT"] == "/var/lib/kube-tts/jobs/shelf/one"
    assert not jobs.uses_default_claim(s) and jobs.uses_default_claim(spec())


def test_a_renderer_key_setting_without_a_key_is_refused():
    with pytest.raises(ValueError, match="<secret>/<key>"):
        _ = OperatorSettings(renderer_key_secret="just-a-name").renderer_key


def test_missing_deployments_name_the_field():
    assert jobs.missing_deployments(spec(), {"joe", "espeak"}) == []
    assert jobs.missing_deployments(spec(), {"joe"}) == [("spec.roles.Bob.deployment", "espeak")]
    assert jobs.missing_deployments(spec(), set())[0] == ("spec.deployment", "joe")


def test_plan_errors_are_invalid_script_or_invalid_text():
    assert jobs.plan_failure_reason(ScriptError("spec.text", 3, "role 'Carol' is not a key")) == "InvalidScript"
    assert jobs.plan_failure_reason(PlanError("spec.roles", "role 'x' has no entry")) == "InvalidScript"
    assert jobs.plan_failure_reason(PlanError("spec.text", "there is nothing to speak")) == "InvalidText"


# --- status ----------------------------------------------------------------------------------


def k8s_job(start="2026-12-03T11:00:00Z", ready=0, conditions=(), completion=None):
    status = {"startTime": start, "ready": ready, "conditions": list(conditions)}
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": "ttsjob-podcast"}, "status": status}


def condition(status, ctype):
    return next(c for c in status.conditions if c.type == ctype)


def test_pending_until_a_renderer_runs():
    plan = plan_of()
    st = jobs.job_status(OWNER, plan, k8s_job(), [], jobs.Files(), T0 + 5)
    assert st.phase == "Pending"
    assert st.progress.summary == f"0/{plan.totals.chunks} chunks (0%)"
    assert condition(st, "Ready").status == "False" and condition(st, "Ready").reason == "Pending"
    assert condition(st, "Failed").status == "False"
    assert (st.start_time, st.duration, st.job_name) == ("2026-12-03T11:00:00Z", "5s", "ttsjob-podcast")


def test_failed_renderer_pods_are_told_while_the_job_retries():
    job = k8s_job()
    job["status"]["failed"] = 2
    st = jobs.job_status(OWNER, plan_of(), job, [], jobs.Files(), T0 + 5)
    assert st.phase == "Pending"
    assert condition(st, "Ready").message.endswith("2 renderer pod(s) failed so far, the Job retries them")


def test_rendering_progress_counts_chunks_characters_audio_and_eta():
    plan = plan_of()
    total = plan.totals.chunks
    first = next(iter(plan.chunks()))
    files = jobs.Files(chunks_done=1, characters_done=first.characters, audio_seconds=1.5)
    st = jobs.job_status(OWNER, plan, k8s_job(ready=2), [], files, T0 + 75)
    assert st.phase == "Rendering"
    p = st.progress
    assert p.summary == f"1/{total} chunks ({100 // total}%)"
    assert (p.chunks_done, p.chunks_total, p.audio_seconds) == (1, total, 1.5)
    assert p.eta_seconds == round(75 * (plan.totals.characters - first.characters) / first.characters)
    assert st.duration == "1m15s"


def test_joining_once_every_chunk_is_done_but_a_chapter_is_not():
    plan = plan_of()
    files = jobs.Files(chunks_done=plan.totals.chunks, characters_done=plan.totals.characters)
    st = jobs.job_status(OWNER, plan, k8s_job(ready=1), [], files, T0 + 10)
    assert st.phase == "Joining"
    assert st.progress.summary.endswith("(100%), 0/1 chapters joined")


def test_complete_from_the_job_with_chapters_and_completion_time():
    plan = plan_of()
    chapter = jobs.ChapterStatus(number=1, title="Chapter 1", file="tts/podcast/chapters/001.mp3", duration_seconds=9.5)
    files = jobs.Files(plan.totals.chunks, plan.totals.characters, 9.0, [chapter])
    done = k8s_job(conditions=[{"type": "Complete", "status": "True"}], completion="2026-12-03T11:03:12Z")
    st = jobs.job_status(OWNER, plan, done, [], files, T0 + 999)
    assert st.phase == "Complete"
    assert (st.completion_time, st.duration) == ("2026-12-03T11:03:12Z", "3m12s")
    assert condition(st, "Ready").status == condition(st, "Complete").status == "True"
    assert condition(st, "Failed").status == "False"
    assert st.chapters == [chapter]
    assert st.progress.eta_seconds is None


def refused_pod(message):
    terminated = {"exitCode": 2, "message": message}
    return {"status": {"containerStatuses": [{"name": "render", "state": {"terminated": terminated}}]}}


def test_a_refused_render_fails_with_the_routers_message():
    failed = k8s_job(conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}])
    message = "chunk 001-00002: 400 voice 'nobody' is not a voice of model joe"
    st = jobs.job_status(OWNER, plan_of(), failed, [refused_pod(message)], jobs.Files(), T0 + 3)
    assert st.phase == "Failed"
    cond = condition(st, "Failed")
    # prefixed with the field that chose the refused chunk's voice: chunk 2 is Bob's line
    assert [c.role for c in plan_of().chunks()][1] == "Bob"
    assert (cond.status, cond.reason, cond.message) == ("True", "RenderRefused", f"spec.roles.Bob: {message}")
    assert condition(st, "Ready").reason == "RenderRefused"


def test_a_refusal_names_spec_for_prose_and_stays_as_it_is_when_it_names_no_chunk():
    prose = build_plan(TtsJobSpec(deployment="joe", text="Just prose."), None, name="p", namespace="tts", uid="u")
    assert jobs.refused_field(prose, "chunk 001-00001: refused") == "spec: chunk 001-00001: refused"
    assert jobs.refused_field(prose, "chunk 009-00001: refused") == "chunk 009-00001: refused"  # not in the plan
    assert jobs.refused_field(prose, "the router refused the work") == "the router refused the work"


def test_other_job_failures_keep_the_jobs_reason():
    failed = k8s_job(
        conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}]
    )
    st = jobs.job_status(OWNER, plan_of(), failed, [], jobs.Files(), T0 + 3)
    assert (condition(st, "Failed").reason, condition(st, "Failed").message) == ("DeadlineExceeded", "too slow")


def test_on_a_claim_of_the_users_own_progress_comes_from_the_job_alone():
    plan = plan_of()
    running = jobs.job_status(OWNER, plan, k8s_job(ready=2), [], None, T0 + 1)
    assert (running.phase, running.progress.chunks_done) == ("Rendering", 0)
    done = k8s_job(conditions=[{"type": "Complete", "status": "True"}], completion="2026-12-03T11:00:30Z")
    st = jobs.job_status(OWNER, plan, done, [], None, T0 + 40)
    assert (st.phase, st.progress.chunks_done, st.progress.chapters_done) == ("Complete", plan.totals.chunks, 1)


def test_failed_status_before_anything_exists_names_the_reason():
    st = jobs.failed_status(OWNER, "DeploymentNotFound", "spec.roles.Bob.deployment: not found", "2026-12-03T11:00:00Z")
    assert st.phase == "Failed"
    assert condition(st, "Failed").reason == "DeploymentNotFound"
    assert condition(st, "Ready").message == "spec.roles.Bob.deployment: not found"
    assert "jobName" not in st.patch()


def test_summary_and_durations():
    assert jobs.summary(12, 40, 0, 3) == "12/40 chunks (30%)"
    assert jobs.summary(40, 40, 1, 3) == "40/40 chunks (100%), 1/3 chapters joined"
    assert jobs.summary(40, 40, 3, 3) == "40/40 chunks (100%)"
    assert [jobs.human_duration(s) for s in (0, 45, 192, 3605)] == ["0s", "45s", "3m12s", "1h0m5s"]


def test_lasting_conditions_keep_their_transition_time():
    plan = plan_of()
    first = jobs.job_status(OWNER, plan, k8s_job(ready=1), [], jobs.Files(chunks_done=1), T0 + 1)
    later = {**OWNER, "status": first.patch()}
    second = jobs.job_status(later, plan, k8s_job(ready=1), [], jobs.Files(chunks_done=2), T0 + 60)
    assert condition(second, "Failed").last_transition_time == condition(first, "Failed").last_transition_time


# --- files on the volume ---------------------------------------------------------------------


def write_chunk(base: Path, chunk, key=None, size=44):
    (base / chunk.stem).parent.mkdir(parents=True, exist_ok=True)
    (base / f"{chunk.stem}.wav").write_bytes(b"\0" * size)
    sidecar = {
        "key": key or chunk.key,
        "sha256": "x",
        "bytes": 44,
        "sampleRate": 22050,
        "samples": 22050,
        "seconds": 1.0,
    }
    (base / f"{chunk.stem}.json").write_text(json.dumps(sidecar))


def test_scan_counts_chunks_of_this_plan_only(tmp_path: Path):
    plan = plan_of()
    chunks = list(plan.chunks())
    base = tmp_path / plan.dir
    write_chunk(base, chunks[0])
    write_chunk(base, chunks[1], key="an-older-plans-key")
    write_chunk(base, chunks[2], size=10)  # a wav that is not the one its sidecar describes
    found = job_files.scan(tmp_path, plan)
    assert (found.chunks_done, found.characters_done, found.audio_seconds) == (1, chunks[0].characters, 1.0)
    assert found.chapters == []


def test_a_poll_reads_only_the_sidecars_of_chunks_not_counted_before(tmp_path: Path):
    plan = plan_of()
    chunks = list(plan.chunks())
    base = tmp_path / plan.dir
    write_chunk(base, chunks[0])
    counted: dict[str, float] = {}
    assert job_files.scan(tmp_path, plan, counted).chunks_done == 1
    assert counted == {chunks[0].key: 1.0}
    (base / f"{chunks[0].stem}.json").unlink()  # not read again: counted once, done for good
    write_chunk(base, chunks[1])
    found = job_files.scan(tmp_path, plan, counted)
    assert (found.chunks_done, found.audio_seconds) == (2, 2.0)
    assert job_files.scan(tmp_path, plan).chunks_done == 1  # without the memory, the files decide


def test_scan_lists_a_chapter_whose_source_is_this_plans(tmp_path: Path):
    plan = plan_of()
    chapter = plan.chapters[0]
    base = tmp_path / plan.dir
    (base / "chapters").mkdir(parents=True)
    (base / chapter.file).write_bytes(b"mp3" * 10)
    sidecar = {
        "number": 1,
        "title": chapter.title,
        "file": chapter.file,
        "durationSeconds": 4.25,
        "sha256": "ab" * 32,
        "bytes": 30,
        "format": "mp3",
        "source": "stale",
    }
    (base / "chapters" / "001.json").write_text(json.dumps(sidecar))
    assert job_files.scan(tmp_path, plan).chapters == []
    (base / "chapters" / "001.json").write_text(json.dumps({**sidecar, "source": chapter_source(chapter)}))
    (listed,) = job_files.scan(tmp_path, plan).chapters
    assert (listed.number, listed.file, listed.duration_seconds, listed.bytes) == (
        1,
        "tts/podcast/chapters/001.mp3",
        4.25,
        30,
    )


def test_an_unmounted_volume_gives_no_count(tmp_path: Path):
    assert job_files.scan_mounted(tmp_path / "absent", plan_of()) is None


def test_removing_a_jobs_files_stays_inside_the_root(tmp_path: Path):
    (tmp_path / "tts" / "podcast" / "chunks").mkdir(parents=True)
    (tmp_path / "tts" / "other").mkdir()
    assert job_files.remove_job_dir(tmp_path, "tts/podcast") is True
    assert not (tmp_path / "tts" / "podcast").exists() and (tmp_path / "tts" / "other").exists()
    assert job_files.remove_job_dir(tmp_path, "tts/podcast") is False
    for escape in ("..", "tts/../..", ""):
        with pytest.raises(ValueError, match="is not inside"):
            job_files.remove_job_dir(tmp_path, escape)
