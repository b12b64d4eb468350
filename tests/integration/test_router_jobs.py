"""Productions on the local cluster: ``/v1/audio/jobs`` creates TtsJobs (and an upload's ConfigMap,
owned by the job), lists, reads and deletes them, and refuses every kind of bad input with a 4xx
naming the field — through the router in the cluster, with its own RBAC. The operator does not run
TtsJobs yet (ADR 0050 is being built), so these test what the router owns; chapter downloads are
tested against a router process on this machine whose jobs volume is a temporary directory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import eventually

from .conftest import Kube, Models, Router, wait_router_sees

MIB = 1024 * 1024
JOBS = "/v1/audio/jobs"


@pytest.fixture(scope="module")
def model(models: Models, router: Router) -> str:
    """A TtsDeployment at zero replicas: the jobs API only needs it to exist (no pod starts)."""
    name = models.create("jobs", wait_ready=False, replicas=0)
    wait_router_sees(router, name, ready=False)
    return name


def unique(prefix: str = "job") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def post(router: Router, admin: bool = True, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{router.url}{JOBS}", headers=router.headers(admin=admin), timeout=30, **kwargs)


def get(router: Router, path: str = "", admin: bool = False) -> httpx.Response:
    return httpx.get(f"{router.url}{JOBS}{path}", headers=router.headers(admin=admin), timeout=30)


def delete(router: Router, name: str) -> httpx.Response:
    return httpx.delete(f"{router.url}{JOBS}/{name}", headers=router.headers(admin=True), timeout=30)


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}, body
    return body["error"]


@pytest.fixture
def cleanup(kube: Kube, router: Router):
    names: list[str] = []
    yield names.append
    for name in names:
        kube.run("delete", "ttsjob", name, "-n", router.namespace, "--wait=false", "--ignore-not-found", check=False)


def test_a_json_request_creates_a_tts_job_as_kubectl_sees_it(
    router: Router, kube: Kube, model: str, cleanup: Callable[[str], None]
):
    name = unique("pod")
    cleanup(name)
    body = {
        "name": name,
        "deployment": model,
        "script": [{"role": "Alice", "text": "Hello, Bob."}, {"role": "Bob", "text": "Hi.", "pauseAfterMs": 800}],
        "roles": {"Alice": {"voice": "default"}, "Bob": {"voice": "default", "deployment": model}},
        "format": "opus",
        "parallelism": 2,
    }
    resp = post(router, json=body)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert (created["name"], created["object"], created["phase"]) == (name, "audio.job", None)
    assert created["plan"] == {"characters": 14, "chunks": 2, "chapters": 1}

    job = kube.get("ttsjob", name, router.namespace)
    assert job is not None
    assert job["spec"]["script"][1] == {"role": "Bob", "text": "Hi.", "pauseAfterMs": 800}
    assert job["spec"]["roles"]["Bob"] == {"voice": "default", "deployment": model}
    assert (job["spec"]["format"], job["spec"]["parallelism"]) == ("opus", 2)
    # the CRD's defaults fill what the request left out
    assert job["spec"]["chapters"] == {"split": "none"} and job["spec"]["retain"] is True
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kube-tts-router"

    # read back through the API: in the list (newest first) and in full
    listed = get(router).json()
    assert listed["object"] == "list"
    entry = next(j for j in listed["data"] if j["name"] == name)
    assert set(entry) == {"id", "object", "name", "createdAt", "phase", "progress", "chapters"}
    assert entry["createdAt"] == job["metadata"]["creationTimestamp"]
    full = get(router, f"/{name}").json()
    # the status is the operator's, which is rendering the job meanwhile: its shape, not its moment
    assert full["spec"] == job["spec"] and {"chapters", "conditions"} <= set(full["status"])
    assert all(c["url"].startswith(f"/v1/audio/jobs/{name}/chapters/") for c in full["status"]["chapters"])


def test_a_job_without_a_name_gets_one(router: Router, kube: Kube, model: str, cleanup: Callable[[str], None]):
    resp = post(router, json={"deployment": model, "text": "A short story. It ends here."})
    assert resp.status_code == 201, resp.text
    name = resp.json()["name"]
    cleanup(name)
    assert name.startswith("prod-") and len(name) == 10
    assert kube.get("ttsjob", name, router.namespace) is not None


def test_an_upload_is_stored_in_a_configmap_the_job_owns_and_deleting_the_job_deletes_both(
    router: Router, kube: Kube, model: str, cleanup: Callable[[str], None]
):
    name = unique("book")
    cleanup(name)
    text = "# Chapter One\n\nIt was a bright cold day in April.\n\n# Chapter Two\n\nThe clocks struck 13. Ünïcödé."
    fields = {"name": name, "deployment": model, "chapters": "headings", "format": "flac", "roles": "{}"}
    resp = post(router, data=fields, files={"file": ("book.txt", text.encode(), "text/plain")})
    assert resp.status_code == 201, resp.text
    assert resp.json()["plan"]["chapters"] == 2

    job = kube.get("ttsjob", name, router.namespace)
    assert job is not None
    ref = job["spec"]["textFrom"]["configMapKeyRef"]
    assert ref == {"name": f"ttsjob-{name}-text", "key": "text"} and "text" not in job["spec"]
    assert job["spec"]["chapters"] == {"split": "headings"} and job["spec"]["format"] == "flac"
    cm = kube.get("configmap", ref["name"], router.namespace)
    assert cm is not None and cm["data"] == {"text": text}
    (owner,) = cm["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "TtsJob",
        name,
        job["metadata"]["uid"],
        True,
    )

    resp = delete(router, name)
    assert resp.status_code == 200 and resp.json() == {"id": name, "object": "audio.job", "deleted": True}
    eventually(lambda: kube.get("ttsjob", name, router.namespace) is None, timeout=30, what="the job gone")
    # the garbage collector follows the owner reference
    eventually(lambda: kube.get("configmap", ref["name"], router.namespace) is None, timeout=60, what="the text gone")
    assert get(router, f"/{name}").status_code == 404
    gone = delete(router, name)
    assert gone.status_code == 404 and error_of(gone)["code"] == "job_not_found"


SCRIPT = [{"role": "Alice", "text": "Hi."}]
ALICE = {"Alice": {"voice": "default"}}


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"text": "Hi.", "script": SCRIPT, "roles": ALICE}, 400, "text", "exactly one of"),
        ({"text": ""}, 400, "text", "at least 1 character"),
        ({"text": "  \n\n  "}, 400, "text", "nothing to speak"),
        ({"text": "Hi.", "deployment": "no-such-model"}, 404, "deployment", "does not exist"),
        ({"script": SCRIPT, "roles": {"Alice": {"voice": "v", "deployment": "nope"}}}, 404,
         "roles.Alice.deployment", "does not exist"),
        ({"script": [{"role": "Al!ce", "text": "Hi."}], "roles": {"Al!ce": {"voice": "v"}}}, 400, "script.0.role",
         "pattern"),
        ({"text": "Alice: Hi.", "textFormat": "script", "roles": {"Al!ce": {"voice": "v"}}}, 400, "roles",
         "role name"),
        ({"text": "Alice: Hi.\nCarol: Who?", "textFormat": "script", "roles": ALICE}, 400, "text", "line 2"),
        ({"text": "Hi.", "format": "ogg"}, 400, "format", "'mp3'"),
        ({"text": "Hi.", "name": "Not_A_Name"}, 400, "name", "not a valid job name"),
        ({"text": "Hi.", "txt": "typo"}, 400, "txt", "not a field"),
        ({"textFrom": {"configMapKeyRef": {"name": "kube-tts-keys", "key": "x"}}}, 400, "textFrom", "multipart"),
    ],
)  # fmt: skip
def test_bad_json_requests_are_refused_naming_the_field_and_create_nothing(
    router: Router, kube: Kube, model: str, body: dict, status: int, param: str, words: str
):
    name = body.pop("name", None) or unique("bad")
    resp = post(router, json={"name": name, "deployment": model, **body})
    assert resp.status_code == status, resp.text
    err = error_of(resp)
    assert err["param"] == param and words in err["message"], err
    assert kube.get("ttsjob", name, router.namespace) is None


def test_bad_uploads_are_refused_with_the_reason(router: Router, kube: Kube, model: str):
    def upload(data: bytes, **fields: str) -> httpx.Response:
        name = unique("up")
        resp = post(router, data={"name": name, "deployment": model, **fields}, files={"file": ("t.txt", data)})
        assert kube.get("ttsjob", name, router.namespace) is None
        assert kube.get("configmap", f"ttsjob-{name}-text", router.namespace) is None
        return resp

    latin1 = upload("Ein Grüß aus Köln.".encode("latin-1"))
    assert latin1.status_code == 400 and error_of(latin1)["param"] == "file"
    assert "not UTF-8" in error_of(latin1)["message"]
    big = upload(b"Words. " * (MIB // 7 + 1))
    assert big.status_code == 413 and error_of(big)["param"] == "file" and "1 MiB" in error_of(big)["message"]
    empty = upload(b"")
    assert empty.status_code == 400 and error_of(empty)["param"] == "file"
    roles = upload(b"Alice: Hi.", textFormat="script", roles="{Alice")
    assert roles.status_code == 400 and error_of(roles)["param"] == "roles"
    script = upload(b"Alice: Hi.\nBob: Hello.", textFormat="script", roles=json.dumps(ALICE))
    assert script.status_code == 400 and error_of(script)["param"] == "file" and "line 2" in error_of(script)["message"]
    unknown = upload(b"Hello.", deployment="no-such-model")
    assert unknown.status_code == 404 and error_of(unknown)["param"] == "deployment"
    no_file = post(router, data={"deployment": model})
    assert no_file.status_code == 400 and error_of(no_file)["param"] == "file"
    csv = {**router.headers(admin=True), "content-type": "text/csv"}
    other = httpx.post(f"{router.url}{JOBS}", content=b"deployment,text", headers=csv, timeout=30)
    assert other.status_code == 415 and error_of(other)["code"] == "unsupported_media_type"


def test_keys_and_scopes_are_those_of_voices(router: Router, kube: Kube, model: str, cleanup: Callable[[str], None]):
    name = unique("scope")
    cleanup(name)
    anonymous = httpx.post(f"{router.url}{JOBS}", json={"name": name, "deployment": model, "text": "Hi."})
    assert anonymous.status_code == 401 and error_of(anonymous)["code"] == "missing_api_key"
    assert httpx.get(f"{router.url}{JOBS}").status_code == 401
    user = post(router, admin=False, json={"name": name, "deployment": model, "text": "Hi."})
    assert user.status_code == 403 and error_of(user)["code"] == "insufficient_scope"
    assert kube.get("ttsjob", name, router.namespace) is None

    assert post(router, json={"name": name, "deployment": model, "text": "Hi."}).status_code == 201
    again = post(router, json={"name": name, "deployment": model, "text": "Hi."})
    assert again.status_code == 409 and error_of(again)["param"] == "name"
    # a user key reads, lists and downloads; it does not delete
    assert get(router, f"/{name}").status_code == 200
    assert any(j["name"] == name for j in get(router).json()["data"])
    refused = httpx.delete(f"{router.url}{JOBS}/{name}", headers=router.headers(), timeout=30)
    assert refused.status_code == 403 and kube.get("ttsjob", name, router.namespace) is not None


def test_a_chapter_not_written_is_a_404_and_unknown_jobs_are_404(
    router: Router, model: str, cleanup: Callable[[str], None]
):
    name = unique("nofiles")
    cleanup(name)
    assert post(router, json={"name": name, "deployment": model, "text": "Hello."}).status_code == 201
    resp = get(router, f"/{name}/chapters/1")
    assert resp.status_code == 404 and error_of(resp)["code"] == "chapter_not_ready"
    assert "not written yet" in error_of(resp)["message"]
    missing = get(router, "/no-such-job/chapters/1")
    assert missing.status_code == 404 and error_of(missing)["code"] == "job_not_found"
    assert get(router, f"/{name}/chapters/zero").status_code == 400
    assert get(router, f"/{name}/chapters/0").status_code == 400
    assert get(router, "/Bad.Name").status_code == 400


# --- chapter files: a router process whose jobs volume is a temporary directory -------------------


def write_chapter(root: Path, directory: str, number: int, fmt: str, data: bytes, sidecar: bool = True) -> Path:
    chapters = root / directory / "chapters"
    chapters.mkdir(parents=True, exist_ok=True)
    audio = chapters / f"{number:03d}.{fmt}"
    audio.write_bytes(data)
    if sidecar:
        info = {"number": number, "file": f"chapters/{number:03d}.{fmt}", "bytes": len(data), "format": fmt}
        (chapters / f"{number:03d}.json").write_text(json.dumps(info))
    return audio


def test_written_chapters_are_served_from_the_jobs_volume_and_nothing_outside_it(
    router: Router,
    spawn_router: Callable[..., Router],
    model: str,
    tmp_path: Path,
    cleanup: Callable[[str], None],
):
    root = tmp_path / "jobs"
    root.mkdir()
    local = spawn_router(jobs_root=str(root), jobs_claim="kube-tts-jobs")
    name, shelf, other = unique("served"), unique("shelf"), unique("elsewhere")
    for n in (name, shelf, other):
        cleanup(n)
    assert post(router, json={"name": name, "deployment": model, "text": "Hi.", "format": "opus"}).status_code == 201
    body = {"name": shelf, "deployment": model, "text": "Hi.", "storage": {"path": "shelf/one", "claimName": ""}}
    assert post(router, json=body).status_code == 201
    body = {"name": other, "deployment": model, "text": "Hi.", "storage": {"claimName": "team-audio"}}
    assert post(router, json=body).status_code == 201

    audio = b"OggS" + bytes(range(256)) * 40
    write_chapter(root, f"{router.namespace}/{name}", 1, "opus", audio)
    write_chapter(root, f"{router.namespace}/{name}", 2, "opus", b"half-written", sidecar=False)
    (tmp_path / "secret.opus").write_bytes(b"outside the volume")
    chapters = root / router.namespace / name / "chapters"
    (chapters / "003.opus").symlink_to(tmp_path / "secret.opus")
    (chapters / "003.json").write_text("{}")
    write_chapter(root, "shelf/one", 1, "mp3", b"ID3-shelf")

    resp = httpx.get(f"{local.url}{JOBS}/{name}/chapters/1", headers=local.headers(), timeout=30)
    assert resp.status_code == 200 and resp.content == audio
    assert resp.headers["content-type"] == "audio/ogg"
    assert f'filename="{name}-001.opus"' in resp.headers["content-disposition"]
    # the audio without its sidecar is still being written; a symlink out of the volume is never followed
    # (not ready while the operator has listed no chapter; once it has rendered the job, whose one
    # chapter this is, not found)
    for n in (2, 3, 4):
        resp = httpx.get(f"{local.url}{JOBS}/{name}/chapters/{n}", headers=local.headers(), timeout=30)
        code = error_of(resp)["code"]
        assert resp.status_code == 404 and code in ("chapter_not_ready", "chapter_not_found"), (n, resp.text)
    shelved = httpx.get(f"{local.url}{JOBS}/{shelf}/chapters/1", headers=local.headers(), timeout=30)
    assert shelved.status_code == 200 and shelved.content == b"ID3-shelf"
    assert shelved.headers["content-type"] == "audio/mpeg"
    elsewhere = httpx.get(f"{local.url}{JOBS}/{other}/chapters/1", headers=local.headers(), timeout=30)
    assert elsewhere.status_code == 409 and error_of(elsewhere)["code"] == "job_on_other_claim"
    assert "team-audio" in error_of(elsewhere)["message"]
