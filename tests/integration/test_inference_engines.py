"""An espeak-ng TtsDeployment on a CPU node, spoken to through the router as server-sent events."""

from __future__ import annotations

import base64
import json
import uuid

import httpx

from tests.helpers import decode_pcm, eventually

from .conftest import Kube, Router
from .test_walking_skeleton import ready_condition


def test_espeak_speaks_mandarin_through_the_router_as_sse(kube: Kube, router: Router):
    name = f"espeak-{uuid.uuid4().hex[:6]}"
    spec = {"engine": "espeak", "model": {"uri": "package://espeakng-loader"}, "resources": {"gpu": 0, "cpu": "250m"}}
    kube.apply(
        {"apiVersion": "tts.kubetts.io/v1alpha1", "kind": "TtsDeployment", "metadata": {"name": name}, "spec": spec},
        router.namespace,
    )
    try:
        eventually(
            lambda: (c := ready_condition(kube.get("ttsdeployment", name, router.namespace))) and c["status"] == "True",
            timeout=180,
            interval=0.5,
            what=f"{name} Ready",
        )
        headers = {"Authorization": f"Bearer {router.key}"}
        with httpx.Client(base_url=router.url, headers=headers, timeout=60) as client:
            router.wait_model_ready(client, name)
            body = {
                "model": name,
                "voice": "cmn",
                "input": "你好，世界，很高兴认识你们大家。今天天气很好，我们去公园散步吧。",
                "response_format": "pcm",
                "stream_format": "sse",
            }
            with client.stream("POST", "/v1/audio/speech", json=body) as resp:
                assert resp.status_code == 200, resp.read()
                assert resp.headers["content-type"].startswith("text/event-stream")
                events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
        deltas = [e for e in events if e["type"] == "speech.audio.delta"]
        done = events[-1]
        assert len(deltas) >= 2 and done["type"] == "speech.audio.done", [e["type"] for e in events]
        audio = decode_pcm(b"".join(base64.b64decode(e["audio"]) for e in deltas), done["sample_rate"])
        assert done["sample_rate"] == 22050 and audio.duration > 1.5 and audio.rms > 500
    finally:
        kube.run("delete", "ttsdeployment", name, "-n", router.namespace, "--wait=false", check=False)
