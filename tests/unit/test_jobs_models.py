"""The TtsJob model and CRD: its schema, its CEL rules (mirrored by the model) and the example."""

from pathlib import Path

import jsonschema
import pytest
import yaml
from tts_crds import names
from tts_crds.crd import job_crd
from tts_crds.jobs import TtsJob, TtsJobSpec
from tts_crds.models import InvalidSpec, parse_spec
from tts_crds.plan import build_plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ttsjob-podcast.yaml"
ROLES = {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}}


def _version():
    return job_crd()["spec"]["versions"][0]


def _spec_schema():
    return _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_crd_names_columns_and_subresources():
    crd = job_crd()
    assert crd["metadata"]["name"] == "ttsjobs.tts.kubetts.io"
    assert crd["spec"]["names"]["shortNames"] == ["ttsj"] and crd["spec"]["names"]["categories"] == ["tts"]
    assert crd["spec"]["names"]["kind"] == names.JOB_KIND
    assert _version()["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in _version()["additionalPrinterColumns"] if not c.get("priority")}
    assert columns == {
        "Phase": ".status.phase",
        "Progress": ".status.progress.summary",
        "Audio": ".status.progress.audioSeconds",
        "Duration": ".status.duration",
        "Age": ".metadata.creationTimestamp",
    }


def test_schema_is_structural_and_documented():
    assert "$ref" not in yaml.safe_dump(job_crd()) and "anyOf" not in yaml.safe_dump(job_crd())
    for name, prop in _spec_schema()["properties"].items():
        assert prop.get("description") and prop.get("type"), f"spec.{name}"
    assert _spec_schema()["required"] == ["deployment"]


def test_cross_field_rules_are_cel():
    rules = " ".join(r["message"] for r in _spec_schema()["x-kubernetes-validations"])
    assert "exactly one of spec.text, spec.textFrom or spec.script" in rules
    assert "spec.textFormat" in rules and "spec.roles" in rules
    chapters = _spec_schema()["properties"]["chapters"]["x-kubernetes-validations"]
    assert chapters[0]["rule"] == "self.split != 'size' || has(self.maxCharacters)"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"deployment": "joe"}, "exactly one of"),
        ({"deployment": "joe", "text": "a", "script": [{"role": "Alice", "text": "b"}], "roles": ROLES}, "exactly one"),
        ({"deployment": "joe", "script": [{"role": "Carol", "text": "b"}], "roles": ROLES}, "'Carol'"),
        ({"deployment": "joe", "script": [{"role": "Alice", "text": "b"}]}, "spec.roles"),
        (
            {"deployment": "joe", "script": [{"role": "Alice", "text": "b"}], "roles": ROLES, "textFormat": "plain"},
            "spec.textFormat",
        ),
        ({"deployment": "joe", "text": "a", "chapters": {"split": "size"}}, "maxCharacters"),
        (
            {
                "deployment": "joe",
                "script": [{"role": "Alice", "text": "b"}],
                "roles": ROLES,
                "chapters": {"split": "headings"},
            },
            "none or size",
        ),
        ({"deployment": "joe", "text": "a", "roles": {"bad:name": {"voice": "x"}}}, "role name"),
        ({"deployment": "joe", "text": ""}, "at least 1 character"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(spec, words):
    with pytest.raises(InvalidSpec) as err:
        parse_spec(TtsJobSpec, spec)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("parallelism", 33, "spec.parallelism"),
        ("parallelism", 0, "spec.parallelism"),
        ("speed", 5, "spec.speed"),
        ("format", "aac", "spec.format"),
        ("storage", {"path": "../escape"}, "spec.storage.path"),
    ],
)
def test_bounds(field, value, path):
    with pytest.raises(InvalidSpec) as err:
        parse_spec(TtsJobSpec, {"deployment": "joe", "text": "hi", field: value})
    assert err.value.field == path


def _openapi_validate(obj):
    """The example against the CRD's structural schema (CEL is the apiserver's; the model mirrors it)."""
    jsonschema.validate(obj, _version()["schema"]["openAPIV3Schema"])


def test_example_is_valid_for_the_crd_the_model_and_the_plan():
    obj = yaml.safe_load(EXAMPLE.read_text())
    assert obj["apiVersion"] == names.API_VERSION and obj["kind"] == names.JOB_KIND
    _openapi_validate(obj)
    job = TtsJob.model_validate(obj)
    plan = build_plan(job.spec, None, name=obj["metadata"]["name"], namespace="default", uid="u")
    assert {(c.role, c.model, c.voice) for c in plan.chunks()} == {
        ("Alice", "joe", "en_US-joe-medium"),
        ("Bob", "espeak", "en-us"),
    }
    assert plan.chapters[0].title == "Episode 1: Speaking machines"


def test_schema_refuses_what_the_model_refuses():
    obj = yaml.safe_load(EXAMPLE.read_text())
    obj["spec"]["parallelism"] = 100
    with pytest.raises(jsonschema.ValidationError):
        _openapi_validate(obj)


def test_defaults_and_child_names():
    spec = TtsJobSpec.model_validate({"deployment": "joe", "text": "hi"})
    assert (spec.voice, spec.format, spec.parallelism, spec.backoff_limit, spec.retain) == (
        "default",
        "mp3",
        1,
        6,
        True,
    )
    assert spec.pauses.role_ms == 350 and spec.chapters.split == "none" and not spec.is_script
    assert names.job_child_name("podcast") == "ttsjob-podcast"
    assert names.job_plan_name("podcast") == "ttsjob-podcast-plan"
    assert names.renderer_labels("podcast")[names.LABEL_JOB] == "podcast"
    assert len(names.job_plan_name("a" * 50)) <= 63


def test_the_chapters_default_satisfies_its_cel_rule():
    """The apiserver checks a default against the CEL rules without its nested defaults: a default of {}
    made the CRD itself invalid ("no such key: split"), which the integration test found."""
    assert _spec_schema()["properties"]["chapters"]["default"] == {"split": "none"}
