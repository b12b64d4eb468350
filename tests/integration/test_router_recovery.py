"""The router's watch caches survive an apiserver restart: it keeps serving from what it knows
while the apiserver is away, re-lists when it is back, and sees changes made afterwards."""

from __future__ import annotations

import uuid

import httpx
from tts_devcluster import cli

from tests.helpers import decode_wav, eventually, metric_value

from .conftest import Kube, Models, Router, wait_router_sees


def lists(router: Router, kind: str) -> float:
    value = metric_value(httpx.get(f"{router.url}/metrics").text, "kubetts_router_watch_lists_total", kind=kind)
    assert value is not None
    return value


def test_router_recovers_from_an_apiserver_restart(router: Router, kube: Kube, models: Models):
    name = models.create("recover")
    wait_router_sees(router, name)
    before = {kind: lists(router, kind) for kind in ("ttsdeployments", "ttsvoices", "pods")}
    assert cli.main(["restart", "kube-apiserver"]) == 0
    # every watch broke and listed again
    eventually(
        lambda: all(lists(router, kind) > n for kind, n in before.items()),
        timeout=60,
        what="every watch cache to re-list",
    )
    # a change made after the restart reaches the router through the new watch
    voice = f"after-{uuid.uuid4().hex[:6]}"
    kube.apply(
        {
            "apiVersion": "tts.kubetts.io/v1alpha1",
            "kind": "TtsVoice",
            "metadata": {"name": voice},
            "spec": {"deployment": name, "speaker": "en_US-joe-medium"},
        },
        router.namespace,
    )
    try:
        eventually(
            lambda: any(
                v["id"] == voice
                for v in httpx.get(f"{router.url}/v1/audio/voices", headers=router.headers()).json()["data"]
            ),
            timeout=30,
            what="the router to see a voice created after the restart",
        )
        resp = router.speak(name, input="Still here after the restart.", voice=voice, timeout=60)
        assert resp.status_code == 200, resp.text
        assert decode_wav(resp.content).duration > 1.0
    finally:
        kube.run("delete", "ttsvoice", voice, "-n", router.namespace, "--wait=false", check=False)
