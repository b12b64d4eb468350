"""Scale-from-zero on the local cluster: a request wakes a model at zero (SSE clients watch it
wake), admin wake/sleep, a burst at zero gets 200 or 429 and never a 5xx, and the activation
timeout answers 504."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import decode_wav, eventually, metric_value

from .conftest import Kube, Models, Router

TEXT = "Good morning. The model was asleep a moment ago."


def known_to(router: Router, model: str) -> None:
    eventually(
        lambda: httpx.get(f"{router.url}/v1/models/{model}", headers=router.headers()).status_code == 200,
        timeout=30,
        what=f"the router to know {model}",
    )


def spec_replicas(kube: Kube, router: Router, model: str) -> int:
    obj = kube.get("ttsdeployment", model, router.namespace)
    assert obj is not None
    return int(obj["spec"]["replicas"])


def metrics(router: Router) -> str:
    return httpx.get(f"{router.url}/metrics", timeout=10).text


def test_requests_wake_a_model_at_zero_and_admin_sleep_puts_it_back(router: Router, models: Models, kube: Kube):
    name = models.create("wake", wait_ready=False, replicas=0)
    known_to(router, name)
    assert not models.pods(name)
    # an SSE client sees the model wake, then gets the audio
    t0 = time.monotonic()
    events = router.speech_events(180, model=name, input=TEXT, response_format="wav")
    woke_in = time.monotonic() - t0
    kinds = [e["type"] for e in events]
    assert events[0]["type"] == "speech.status" and events[0]["status"] == "waking", events[0]
    assert any(e.get("status") == "started" for e in events)
    assert kinds[-1] == "speech.audio.done", kinds
    audio = decode_wav(b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta"))
    assert audio.duration > 1.0 and audio.rms > 500
    waking = [e for e in events if e.get("status") == "waking"]
    assert waking[-1]["elapsed"] >= waking[0]["elapsed"] and waking[0]["position"] == 1
    assert spec_replicas(kube, router, name) == 1
    text = metrics(router)
    assert metric_value(text, "kubetts_router_scale_from_zero_total", deployment=name, result="scaled") == 1
    finished = metric_value(text, "kubetts_router_last_request_timestamp_seconds", deployment=name)
    assert finished is not None and abs(finished - time.time()) < 60
    assert metric_value(text, "kubetts_router_inflight_requests", deployment=name, namespace=router.namespace) == 0
    assert metric_value(text, "kubetts_router_queued_requests", deployment=name, namespace=router.namespace) == 0
    print(f"\nscale from zero: first audio after {woke_in:.1f}s ({len(waking)} waking events)")

    # admin sleep scales to zero through the scale subresource; the next request wakes it again
    resp = httpx.post(f"{router.url}/v1/models/{name}/sleep", headers=router.headers(admin=True), timeout=30)
    assert resp.status_code == 200 and resp.json()["changed"] is True, resp.text
    assert spec_replicas(kube, router, name) == 0
    eventually(lambda: not models.pods(name), timeout=60, what=f"{name}'s pods to go away")
    eventually(
        lambda: httpx.get(f"{router.url}/v1/models/{name}", headers=router.headers()).json()["scaled_to_zero"],
        timeout=30,
        what="the router to see the model at zero",
    )
    resp = router.speak(name, input=TEXT)
    assert resp.status_code == 200, resp.text
    assert decode_wav(resp.content).duration > 1.0
    assert spec_replicas(kube, router, name) == 1
    # wake on an awake model changes nothing
    resp = httpx.post(f"{router.url}/v1/models/{name}/wake", headers=router.headers(admin=True), timeout=30)
    assert resp.status_code == 200 and resp.json()["changed"] is False


def test_admin_wake_raises_zero_to_one(router: Router, models: Models, kube: Kube):
    name = models.create("adminwake", wait_ready=False, replicas=0)
    known_to(router, name)
    resp = httpx.post(f"{router.url}/v1/models/{name}/wake", headers=router.headers(admin=True), timeout=30)
    assert resp.status_code == 200 and resp.json()["changed"] is True, resp.text
    assert spec_replicas(kube, router, name) == 1
    models.wait_ready(name)


def test_burst_of_100_at_zero_gets_200_or_429_with_retry_after_never_5xx(spawn_router, models: Models):
    name = models.create("burst", wait_ready=False, replicas=0)
    # a small hold queue; no per-key rate limit, so that every 429 is the queue's
    small = spawn_router(hold_queue_size="10", rate_limit_per_second="0")
    known_to(small, name)

    def one(i: int) -> httpx.Response:
        return small.speak(name, timeout=240, input=f"Request number {i} of the burst.")

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(one, range(100)))
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {200, 429}, codes
    rejected = [r for r in answers if r.status_code == 429]
    served = [r for r in answers if r.status_code == 200]
    # all 100 arrive while the model is at zero: 10 wait in the queue, the rest are told to come back
    assert len(served) >= 10 and len(rejected) >= 1, codes
    for r in rejected:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "queue_full" and r.json()["error"]["type"] == "rate_limit_error"
    # every admitted request was served in full
    for r in served:
        assert decode_wav(r.content).duration > 0.5
    text = metrics(small)
    assert metric_value(text, "kubetts_router_requests_total", deployment=name, code="429") == len(rejected)
    assert metric_value(text, "kubetts_router_requests_total", deployment=name, code="200") == len(served)
    assert metric_value(text, "kubetts_router_rejected_requests_total", reason="queue_full") == len(rejected)
    print(f"\nburst of 100 at zero: {len(served)} served, {len(rejected)} told to retry")


def test_activation_timeout_is_504_and_clients_that_leave_leave_the_queue(router: Router, models: Models, kube: Kube):
    # pods of this model can never be scheduled: it never becomes ready
    name = models.create(
        "never",
        wait_ready=False,
        replicas=0,
        activationTimeoutSeconds=6,
        nodeSelector={"kubetts.test/nowhere": "true"},
    )
    known_to(router, name)

    def queued() -> float | None:
        return metric_value(metrics(router), "kubetts_router_queued_requests", deployment=name)

    # a client that gives up after 1 s: its request leaves the hold queue long before the deadline
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        router.speak(name, input=TEXT, timeout=1)
    eventually(lambda: queued() == 0, timeout=3, what="the abandoned request to leave the queue")
    assert time.monotonic() - t0 < 5
    assert metric_value(metrics(router), "kubetts_router_requests_total", deployment=name, code="499") == 1

    t0 = time.monotonic()
    resp = router.speak(name, input=TEXT, timeout=60)
    waited = time.monotonic() - t0
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"]["code"] == "activation_timeout"
    assert 6 <= waited < 20
    assert spec_replicas(kube, router, name) == 1  # the router did try to wake it
    events = router.speech_events(model=name, input=TEXT)
    assert events[0]["type"] == "speech.status"
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "activation_timeout"
    assert metric_value(metrics(router), "kubetts_router_requests_total", deployment=name, code="504") == 2
