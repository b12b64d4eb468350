"""Scale to zero and back, end to end: router metrics -> operator -> zero -> request -> awake."""

from __future__ import annotations

import time
import uuid

from tts_crds.times import parse_time

from tests.helpers import decode_wav, eventually

from .conftest import Kube, Router
from .test_operator import condition, ttsd, wait_condition

IDLE = 10  # the smallest idle window the CRD allows
PERIOD = 2  # KUBETTS_AUTOSCALE_PERIOD_SECONDS of the local cluster's operator


def test_idle_model_scales_to_zero_and_the_next_request_wakes_it(kube: Kube, router: Router):
    name = f"nap-{uuid.uuid4().hex[:5]}"
    kube.apply(ttsd(name, scaleToZero={"idleSeconds": IDLE}), router.namespace)
    try:
        wait_condition(kube, router.namespace, name, "Ready", "True")
        eventually(
            lambda: router.speak(name, input="Warm.", timeout=180).status_code == 200, timeout=30, what="first request"
        )
        resp = router.speak(name, input="Before I nap, one sentence.", timeout=180)
        assert resp.status_code == 200
        spoke_at = time.time()
        asleep = wait_condition(
            kube, router.namespace, name, "Ready", "False", "ScaledToZero", timeout=IDLE + 4 * PERIOD + 30
        )
        slept_after = parse_time(asleep["status"]["scaledToZeroAt"]) - spoke_at
        # idle window + one poll period (+ a period of scrape staleness and 1 s timestamp rounding)
        assert IDLE - 1 <= slept_after <= IDLE + 2 * PERIOD + 2, slept_after
        assert abs(parse_time(asleep["status"]["lastActivityTime"]) - spoke_at) < 3
        assert asleep["spec"]["replicas"] == 0
        eventually(
            lambda: not kube.list("pods", router.namespace, f"tts.kubetts.io/deployment={name}"),
            timeout=60,
            what="the pod to go away",
        )
        events = [e["reason"] for e in kube.events(router.namespace, name)]
        assert "ScaledToZero" in events

        t0 = time.monotonic()
        woke = router.speak(name, input="I was asleep, and now I speak.", timeout=180)
        wake_seconds = time.monotonic() - t0
        assert woke.status_code == 200, woke.text
        audio = decode_wav(woke.content)
        assert audio.duration > 1.0 and audio.rms > 500
        awake = kube.get("ttsdeployment", name, router.namespace)
        assert awake["spec"]["replicas"] == 1
        print(f"\nscaled to zero {slept_after:.1f}s after the last request; woke and spoke in {wake_seconds:.1f}s")
    finally:
        kube.run("delete", "ttsdeployment", name, "-n", router.namespace, "--wait=false", check=False)


def test_sustained_load_scales_up(kube: Kube, router: Router):
    """targetConcurrency 1: several concurrent long requests make the operator add a replica."""
    import concurrent.futures as cf

    name = f"busy-{uuid.uuid4().hex[:5]}"
    kube.apply(ttsd(name, targetConcurrency=1, maxReplicas=2), router.namespace)
    try:
        wait_condition(kube, router.namespace, name, "Ready", "True")
        text = " ".join(["This sentence keeps the model busy for a while."] * 40)
        with cf.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(router.speak, name, input=text, timeout=180) for _ in range(6)]
            scaled = eventually(
                lambda: (o := kube.get("ttsdeployment", name, router.namespace)) and o["spec"]["replicas"] == 2 and o,
                timeout=90,
                what="scale up to 2",
            )
            assert all(f.result().status_code == 200 for f in futures)
        assert condition(scaled, "Ready")["status"] == "True"
    finally:
        kube.run("delete", "ttsdeployment", name, "-n", router.namespace, "--wait=false", check=False)


def test_a_woken_model_is_served_once_its_server_is_ready_not_when_the_kubelet_says_so(kube: Kube, router: Router):
    """ADR 0038: the router probes a starting pod's /readyz itself. Here the operator's own pod can
    never be scheduled (a node selector nothing matches) and a hand-made pod of the deployment has a
    readiness probe that waits ten minutes: Kubernetes never calls it Ready during the test, yet the
    request waiting for the model is served by it as soon as its model is loaded."""
    name = f"early-{uuid.uuid4().hex[:5]}"
    spec = {
        "engine": "espeak",
        "model": {"uri": "package://espeakng-loader"},
        "replicas": 0,
        "nodeSelector": {"kubetts.io/test": "nowhere"},
        "activationTimeoutSeconds": 60,
    }
    kube.apply(ttsd(name, **spec), router.namespace)
    pod_name = f"{name}-by-hand"
    try:
        deployment = eventually(lambda: kube.get("deployment", f"tts-{name}", router.namespace), 30, "its Deployment")
        template = deployment["spec"]["template"]
        labels = dict(template["metadata"]["labels"])
        labels.pop("pod-template-hash", None)  # no ReplicaSet adopts it
        pod_spec = dict(template["spec"])
        pod_spec.pop("nodeSelector", None)
        (container,) = pod_spec["containers"]
        container["readinessProbe"] = {**container["readinessProbe"], "initialDelaySeconds": 600}
        kube.apply(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "labels": labels}, "spec": pod_spec},
            router.namespace,
        )
        kube.wait_pod(router.namespace, pod_name, lambda p: p["status"].get("phase") == "Running", what="running")

        resp = router.speak(name, input="Served before the kubelet noticed.", timeout=90)
        assert resp.status_code == 200, resp.text
        audio = decode_wav(resp.content)
        assert audio.duration > 1.0 and audio.rms > 500
        hand_made = kube.get("pod", pod_name, router.namespace)
        assert condition(hand_made, "Ready")["status"] == "False"  # Kubernetes still says not ready
        operator_pods = kube.list("pods", router.namespace, f"tts.kubetts.io/deployment={name}")
        assert all(not p["spec"].get("nodeName") for p in operator_pods if p["metadata"]["name"] != pod_name)
    finally:
        kube.run("delete", "pod", pod_name, "-n", router.namespace, "--wait=false", check=False)
        kube.run("delete", "ttsdeployment", name, "-n", router.namespace, "--wait=false", check=False)
