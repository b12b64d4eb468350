"""One sentence end to end: TtsDeployment -> operator -> inference pod -> router -> decoded WAV."""

from __future__ import annotations

import time
import uuid

import httpx
from openai import OpenAI

from tests.helpers import decode_wav, eventually

from .conftest import Kube, Router, tts_deployment


def ready_condition(obj):
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)


def test_apply_wait_ready_and_speak(kube: Kube, router: Router):
    name = f"skel-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    kube.apply(tts_deployment(name, resources={"gpu": 1, "cpu": "500m", "memory": "1Gi"}), router.namespace)
    try:
        obj = eventually(
            lambda: (
                (o := kube.get("ttsdeployment", name, router.namespace))
                and (c := ready_condition(o))
                and c["status"] == "True"
                and o
            ),
            timeout=180,
            interval=0.5,
            what=f"{name} Ready",
        )
        assert obj["status"]["readyReplicas"] == 1
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        pods = kube.list("pods", router.namespace, f"tts.kubetts.io/deployment={name}")
        assert len(pods) == 1
        node = kube.get("node", pods[0]["spec"]["nodeName"])
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
        headers = {"Authorization": f"Bearer {router.key}"}
        with httpx.Client(base_url=router.url, headers=headers, timeout=60) as client:
            router.wait_model_ready(client, name)
            resp = client.post(
                "/v1/audio/speech",
                json={"model": name, "input": "The quick brown fox jumps over the lazy dog.", "response_format": "wav"},
            )
            first_spoken = time.monotonic() - t0
            assert resp.status_code == 200, resp.text
            audio = decode_wav(resp.content)
            assert audio.sample_rate == 22050
            assert audio.duration > 1.0
            assert audio.rms > 500, f"RMS {audio.rms:.0f} is too close to silence"
            print(
                f"\napply -> first spoken request: {first_spoken:.1f}s; {audio.duration:.2f}s of audio, "
                f"RMS {audio.rms:.0f}"
            )
            # the unmodified OpenAI SDK speaks to the router
            sdk = OpenAI(base_url=f"{router.url}/v1", api_key=router.key)
            spoken = sdk.audio.speech.create(
                model=name, voice="default", input="Hello from the OpenAI SDK.", response_format="wav"
            )
            assert decode_wav(spoken.content).duration > 0.8
            unauthenticated = httpx.post(f"{router.url}/v1/audio/speech", json={"model": name, "input": "hi"})
            assert unauthenticated.status_code == 401
            assert unauthenticated.json()["error"]["code"] == "missing_api_key"
            missing = client.post("/v1/audio/speech", json={"model": "no-such-model", "input": "hi"})
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    finally:
        kube.run("delete", "ttsdeployment", name, "-n", router.namespace, "--wait=false", check=False)


def test_models_list_is_openai_shaped(router: Router):
    resp = httpx.get(f"{router.url}/v1/models", headers={"Authorization": f"Bearer {router.key}"})
    body = resp.json()
    assert resp.status_code == 200 and body["object"] == "list"
    assert all(m["object"] == "model" and m["owned_by"] == "kube-tts" for m in body["data"])
    assert httpx.get(f"{router.url}/openapi.json").json()["paths"]["/v1/audio/speech"]["post"]
