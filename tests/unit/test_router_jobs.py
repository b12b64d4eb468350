"""Productions, pure logic: a request becomes a TtsJob (and an upload its text's ConfigMap), bad input
is a 400 naming the field, a TtsJob becomes the API's views, a chapter number becomes a path that
never leaves the jobs volume. (The routes against the local cluster: tests/integration/test_router_jobs.py;
the chapter download through the real app: tests/component/test_router_jobs_files.py.)"""

from pathlib import Path

import pytest
from tts_api.jobs import (
    MAX_UPLOAD_BYTES,
    NAME_PREFIX,
    chapter_files,
    check_job_name,
    check_plan,
    decode_text,
    deployments_named,
    form_spec,
    generate_name,
    inside,
    job_manifest,
    job_summary,
    job_view,
    owner_reference,
    parse_job_spec,
    split_body,
    text_configmap,
    text_source,
)
from tts_crds import names
from tts_crds.http_errors import ApiError
from tts_crds.jobs import TtsJobSpec

ROLES = {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}}


def refused(fn, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as err:
        fn(*args, **kwargs)
    return err.value


def job_obj(name: str = "book", spec: dict | None = None, status: dict | None = None) -> dict:
    return {
        "metadata": {"name": name, "namespace": "kube-tts", "uid": "u-1", "creationTimestamp": "2026-12-03T11:00:00Z"},
        "spec": spec or {"deployment": "joe", "text": "Hello."},
        **({"status": status} if status is not None else {}),
    }


# --- names ----------------------------------------------------------------------------------------


def test_generated_names_are_valid_job_names_and_differ():
    generated = {generate_name() for _ in range(50)}
    assert len(generated) > 45
    for name in generated:
        assert name.startswith(NAME_PREFIX) and len(name) == len(NAME_PREFIX) + 5
        assert check_job_name(name) == name


@pytest.mark.parametrize("bad", ["", "Book", "a/b", "..", "-x", "x-", "a" * 51, "book.one", "1book"])
def test_job_names_that_are_not_dns_labels_are_refused_naming_name(bad: str):
    err = refused(check_job_name, bad)
    assert (err.status, err.code, err.param) == (400, "invalid_job_name", "name")


# --- request -> spec ------------------------------------------------------------------------------


def test_a_json_body_becomes_a_tts_job_with_only_the_fields_it_set():
    name, raw = split_body({"name": "pod", "deployment": "joe", "text": "Hi there.", "format": "opus"})
    spec = parse_job_spec(raw)
    job = job_manifest(name or "", "kube-tts", spec)
    assert job["apiVersion"] == "tts.kubetts.io/v1alpha1" and job["kind"] == "TtsJob"
    assert job["metadata"]["name"] == "pod" and job["metadata"]["namespace"] == "kube-tts"
    assert job["metadata"]["labels"][names.LABEL_JOB] == "pod"
    assert job["spec"] == {"deployment": "joe", "text": "Hi there.", "format": "opus"}
    # the manifest parses back to the same spec (what the operator will read)
    assert TtsJobSpec.model_validate(job["spec"]) == spec


def test_a_script_body_keeps_its_roles_and_lines_in_camel_case():
    body = {
        "deployment": "joe",
        "script": [{"role": "Alice", "text": "Hi.", "pauseAfterMs": 800}, {"role": "Bob", "text": "Hello."}],
        "roles": ROLES,
    }
    spec = parse_job_spec(split_body(body)[1])
    manifest = job_manifest("pod", "ns", spec)["spec"]
    assert manifest["script"][0] == {"role": "Alice", "text": "Hi.", "pauseAfterMs": 800}
    assert manifest["roles"]["Bob"] == {"voice": "en-us", "deployment": "espeak"}
    assert deployments_named(spec) == [("deployment", "joe"), ("roles.Bob.deployment", "espeak")]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"deployment": "joe", "text": "a", "script": [{"role": "A", "text": "b"}], "roles": {"A": {"voice": "v"}}},
         "text", "exactly one of"),
        ({"deployment": "joe"}, "text", "exactly one of"),
        ({"deployment": "joe", "text": ""}, "text", "at least 1 character"),
        ({"deployment": "Joe!", "text": "Hi."}, "deployment", "pattern"),
        ({"deployment": "joe", "text": "Hi.", "format": "ogg"}, "format", "'mp3'"),
        ({"deployment": "joe", "text": "Hi.", "parallelism": 0}, "parallelism", "greater than or equal to 1"),
        ({"deployment": "joe", "script": [{"role": "Al!ce", "text": "Hi."}], "roles": {"Al!ce": {"voice": "v"}}},
         "script.0.role", "pattern"),
        ({"deployment": "joe", "text": "Hi.", "roles": {"Al!ce": {"voice": "v"}}}, "roles", "role name"),
        ({"deployment": "joe", "script": [{"role": "Carol", "text": "Hi."}], "roles": ROLES}, "script", "Carol"),
        ({"deployment": "joe", "text": "Hi.", "chapters": {"split": "size"}}, "chapters.maxCharacters", "required"),
        ({"deployment": "joe", "script": [{"role": "Alice", "text": "Hi."}], "roles": ROLES, "textFormat": "script"},
         "textFormat", "applies to text"),
        ({"deployment": "joe", "text": "Hi.", "storage": {"path": "../etc"}}, "storage.path", "pattern"),
    ],
)  # fmt: skip
def test_a_bad_spec_is_a_400_naming_the_request_field(body: dict, param: str, words: str):
    err = refused(parse_job_spec, split_body(body)[1])
    assert (err.status, err.code, err.param) == (400, "invalid_value", param)
    assert err.message.startswith(f"{param}: ") and words in err.message, err.message
    assert "Value error" not in err.message


def test_unknown_keys_text_from_and_non_objects_are_refused_in_a_json_body():
    assert refused(split_body, {"deployment": "joe", "txt": "Hi"}).param == "txt"
    text_from = refused(split_body, {"deployment": "joe", "textFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}})
    assert text_from.param == "textFrom" and "multipart" in text_from.message
    assert refused(split_body, ["deployment"]).status == 400
    assert refused(split_body, {"name": 3, "deployment": "joe", "text": "Hi"}).param == "name"


def test_the_plan_is_checked_before_anything_is_made():
    spec = parse_job_spec({"deployment": "joe", "text": "   \n\n  "})
    err = refused(check_plan, spec, None, "book", "ns")
    assert (err.status, err.param) == (400, "text") and "nothing to speak" in err.message
    script = parse_job_spec(
        {"deployment": "joe", "textFormat": "script", "text": "Alice: Hi.\nCarol: Who?", "roles": ROLES}
    )
    err = refused(check_plan, script, None, "pod", "ns")
    assert err.param == "text" and "line 2" in err.message and "Carol" in err.message
    ok = parse_job_spec({"deployment": "joe", "text": "One. Two.\n\nThree.", "chapters": {"split": "none"}})
    totals = check_plan(ok, None, "book", "ns")
    assert (totals.chapters, totals.chunks) == (1, 2)


# --- uploads --------------------------------------------------------------------------------------


def test_form_fields_become_a_spec_with_json_roles_and_a_flat_chapter_split():
    raw = form_spec(
        {
            "deployment": "joe",
            "textFormat": "script",
            "roles": '{"Alice": {"voice": "joe"}}',
            "chapters": "size",
            "maxCharacters": "20000",
            "parallelism": "3",
            "retain": "false",
        }
    )
    raw["textFrom"] = text_source("pod")
    spec = parse_job_spec(raw, {"textFrom": "file"})
    assert spec.roles is not None and spec.roles["Alice"].voice == "joe"
    assert (spec.chapters.split, spec.chapters.max_characters) == ("size", 20000)
    assert (spec.parallelism, spec.retain) == (3, False)
    assert spec.text_from is not None
    assert spec.text_from.config_map_key_ref.model_dump() == {"name": "ttsjob-pod-text", "key": "text"}
    assert form_spec({"chapters": '{"split": "headings"}'}) == {"chapters": {"split": "headings"}}


def test_bad_form_fields_are_refused_naming_them():
    assert refused(form_spec, {"roles": "{not json"}).param == "roles"
    assert refused(form_spec, {"text": "Hello"}).param == "text"
    assert refused(form_spec, {"script": "[]"}).param == "script"
    assert refused(form_spec, {"voices": "x"}).code == "unknown_field"
    raw = {**form_spec({"deployment": "joe", "parallelism": "many"}), "textFrom": text_source("x")}
    assert refused(parse_job_spec, raw, {"textFrom": "file"}).param == "parallelism"


def test_an_uploaded_files_plan_errors_name_the_file():
    spec = parse_job_spec(
        {**form_spec({"deployment": "joe", "textFormat": "script", "roles": '{"Alice": {"voice": "joe"}}'}),
         "textFrom": text_source("pod")}
    )  # fmt: skip
    err = refused(check_plan, spec, "Alice: Hi.\nBob: Hello.", "pod", "ns", {"textFrom": "file"})
    assert err.param == "file" and "line 2" in err.message


def test_uploaded_text_must_be_utf8_not_empty_and_at_most_a_configmap():
    assert decode_text("\ufeffCafé. Grüße.".encode()) == "Café. Grüße."
    latin1 = refused(decode_text, "Café".encode("latin-1"))
    assert (latin1.status, latin1.code, latin1.param) == (400, "invalid_file", "file") and "UTF-8" in latin1.message
    assert "byte 3" in latin1.message
    empty = refused(decode_text, b" \n\n ")
    assert (empty.status, empty.param) == (400, "file") and "nothing to speak" in empty.message
    assert decode_text(b"a" * MAX_UPLOAD_BYTES) == "a" * MAX_UPLOAD_BYTES
    big = refused(decode_text, b"a" * (MAX_UPLOAD_BYTES + 1))
    assert (big.status, big.code, big.param) == (413, "file_too_large", "file") and "1 MiB" in big.message
    # what the apiserver allows a ConfigMap: 1 MiB of keys and values together
    assert MAX_UPLOAD_BYTES + len(names.TEXT_KEY) == 1024 * 1024


def test_the_text_configmap_is_named_for_the_job_and_owned_by_it_once_it_exists():
    cm = text_configmap("pod", "ns", "Hello.")
    assert cm["metadata"]["name"] == names.job_text_name("pod") == "ttsjob-pod-text"
    assert cm["data"] == {"text": "Hello."} and cm["metadata"]["labels"][names.LABEL_JOB] == "pod"
    owner = owner_reference(job_obj("pod"))
    assert owner == {
        "apiVersion": "tts.kubetts.io/v1alpha1",
        "kind": "TtsJob",
        "name": "pod",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": False,
    }


# --- views ----------------------------------------------------------------------------------------


def test_a_job_the_operator_has_not_seen_shows_no_phase():
    summary = job_summary(job_obj())
    assert summary == {
        "id": "book",
        "object": "audio.job",
        "name": "book",
        "createdAt": "2026-12-03T11:00:00Z",
        "phase": None,
        "progress": None,
        "chapters": {"done": 0, "total": None},
    }
    assert job_view(job_obj())["status"] == {"chapters": [], "conditions": []}


def test_a_rendering_jobs_views_carry_progress_chapters_with_urls_and_conditions():
    status = {
        "phase": "Rendering",
        "jobName": "ttsjob-book",
        "progress": {"chunksDone": 3, "chunksTotal": 10, "chaptersDone": 1, "chaptersTotal": 2, "summary": "3/10"},
        "chapters": [{"number": 1, "title": "One", "file": "kube-tts/book/chapters/001.mp3", "bytes": 1000}],
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Rendering", "message": "3/10 chunks",
             "lastTransitionTime": "2026-12-03T11:01:00Z"}
        ],
    }  # fmt: skip
    summary = job_summary(job_obj(status=status))
    assert summary["phase"] == "Rendering" and summary["chapters"] == {"done": 1, "total": 2}
    assert summary["progress"]["chunksDone"] == 3 and summary["progress"]["chunksTotal"] == 10
    view = job_view(job_obj(status=status))
    assert view["status"]["jobName"] == "ttsjob-book"
    assert view["status"]["chapters"][0]["url"] == "/v1/audio/jobs/book/chapters/1"
    assert view["status"]["conditions"][0]["reason"] == "Rendering"
    assert view["spec"] == {"deployment": "joe", "text": "Hello."}


def test_a_status_the_router_cannot_read_shows_as_none_rather_than_failing():
    assert job_summary(job_obj(status={"phase": "Exploded"}))["phase"] is None


# --- chapter files --------------------------------------------------------------------------------


def spec_of(**fields) -> TtsJobSpec:
    return TtsJobSpec.model_validate({"deployment": "joe", "text": "Hi.", **fields})


def test_a_chapter_lies_under_namespace_and_name_or_the_storage_path(tmp_path: Path):
    files = chapter_files(tmp_path, job_obj(), spec_of(), 2)
    assert files.audio == tmp_path / "kube-tts" / "book" / "chapters" / "002.mp3"
    assert files.sidecar == tmp_path / "kube-tts" / "book" / "chapters" / "002.json"
    assert (files.media_type, files.filename) == ("audio/mpeg", "book-002.mp3")
    custom = chapter_files(tmp_path, job_obj(), spec_of(format="opus", storage={"path": "shows/ep1"}), 12)
    assert custom.audio == tmp_path / "shows" / "ep1" / "chapters" / "012.opus"
    assert custom.media_type == "audio/ogg"
    assert chapter_files(tmp_path, job_obj(), spec_of(format="flac"), 1).media_type == "audio/flac"
    assert chapter_files(tmp_path, job_obj(), spec_of(format="wav"), 1).media_type == "audio/wav"


@pytest.mark.parametrize("path", ["../../etc", "a/../../..", "/etc", "a/../.."])
def test_a_storage_path_that_leaves_the_volume_is_refused(tmp_path: Path, path: str):
    # the CRD's pattern forbids these; an object stored before it, or a bypassed model, must not escape
    spec = spec_of().model_copy(update={"storage": spec_of().storage.model_copy(update={"path": path})})
    err = refused(chapter_files, tmp_path, job_obj(), spec, 1)
    assert (err.status, err.param) == (400, "storage.path")


def test_chapters_are_numbered_from_one(tmp_path: Path):
    assert refused(chapter_files, tmp_path, job_obj(), spec_of(), 0).param == "n"


def test_a_symlink_out_of_the_volume_is_not_inside_it(tmp_path: Path):
    root, outside = tmp_path / "jobs", tmp_path / "secret"
    (root / "ns" / "book" / "chapters").mkdir(parents=True)
    outside.write_text("not audio")
    link = root / "ns" / "book" / "chapters" / "001.mp3"
    link.symlink_to(outside)
    assert not inside(root, link)
    real = root / "ns" / "book" / "chapters" / "002.mp3"
    real.write_bytes(b"ID3")
    assert inside(root, real)


# --- the API docs ---------------------------------------------------------------------------------


def test_the_openapi_docs_show_the_jobs_endpoints_with_examples_that_the_model_accepts():
    from tts_api.app import create_app
    from tts_api.settings import RouterSettings

    doc = create_app(RouterSettings()).openapi()  # no lifespan: the docs need no cluster
    paths = doc["paths"]
    assert set(paths["/v1/audio/jobs"]) == {"get", "post"}
    assert set(paths["/v1/audio/jobs/{name}"]) == {"get", "delete"}
    chapter = paths["/v1/audio/jobs/{name}/chapters/{n}"]["get"]
    assert set(chapter["responses"]["200"]["content"]) == {"audio/mpeg", "audio/ogg", "audio/flac", "audio/wav"}
    body = paths["/v1/audio/jobs"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    schema = body["application/json"]["schema"]
    assert "textFrom" not in schema["properties"] and {"name", "script", "roles"} <= set(schema["properties"])
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    # every example is a request the router accepts
    for example in body["application/json"]["examples"].values():
        name, raw = split_body(example["value"])
        check_plan(parse_job_spec(raw), None, name or "x", "ns")
