"""Failures injected on purpose into the running platform, and what must hold through them.

- the operator SIGKILLed again and again while it reconciles many objects (and while specs change
  and owners are deleted under it): it converges with exactly one child of each kind per owner;
- an inference pod deleted while it streams: its clients get a clean error, a concurrent stream on
  the other pod and every request sent meanwhile or afterwards succeed, nothing hangs;
- the kube-apiserver down while requests flow: the router keeps serving the models it knows, its
  watches resume, the operator resumes, and a request that arrived for a sleeping model meanwhile
  is served once the apiserver is back.

Every test is bounded in time and asserts behaviour, not speed; docs/reliability.md records what
was tried and what held.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from tts_devcluster import platform, procs
from tts_devcluster.controlplane import ControlPlane
from tts_devcluster.layout import OPERATOR_HEALTH_PORT

from tests.helpers import decode_pcm, decode_wav, eventually, metric_value, sse_events

from .conftest import Kube, Models, Router, pod_ready, tts_deployment, wait_router_sees

pytestmark = pytest.mark.usefixtures("router")  # CRDs, operator and router running

SHORT = "The quick brown fox jumps over the lazy dog."
# about 3,700 characters: minutes of audio at half speed, far longer than any test waits
LONG_TEXT = " ".join(f"This is sentence number {i} of a long text that nobody will hear." for i in range(55))
# long enough (at half speed) that its audio outgrows the socket buffers: the pod stays busy with it
# until the test reads it, so the balancer sees it in flight
MEDIUM_TEXT = " ".join(f"Sentence {i} of a text that must arrive whole." for i in range(20))
ESPEAK = {"engine": "espeak", "model": {"uri": "package://espeakng-loader"}}


# --- helpers -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | str  # the HTTP status, or the exception's name when there was no answer
    seconds: float = 0.0  # audio received


@dataclass
class Traffic:
    """Threads that send speech requests one after another until stopped, and what each got."""

    router: Router
    model: str
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _client(self) -> None:
        with httpx.Client(headers=self.router.headers(), timeout=60) as http:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    resp = http.post(
                        f"{self.router.url}/v1/audio/speech",
                        json={"model": self.model, "input": SHORT, "response_format": "wav"},
                    )
                    seconds = decode_wav(resp.content).duration if resp.status_code == 200 else 0.0
                    self.outcomes.append(Outcome(t0, time.monotonic(), resp.status_code, seconds))
                except httpx.HTTPError as exc:
                    self.outcomes.append(Outcome(t0, time.monotonic(), exc.__class__.__name__))

    @contextmanager
    def running(self, clients: int = 2) -> Iterator[Traffic]:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        try:
            yield self
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=90)
            assert not any(t.is_alive() for t in threads), "a traffic client hung"

    def between(self, start: float, end: float) -> list[Outcome]:
        """Requests sent and answered entirely within [start, end]."""
        return [o for o in self.outcomes if o.started >= start and o.ended <= end]


def router_metric(router: Router, name: str, **labels: str) -> float | None:
    return metric_value(httpx.get(f"{router.url}/metrics", timeout=10).text, name, **labels)


def pod_status(pod: dict) -> dict:
    return httpx.get(f"http://{pod['status']['podIP']}:8000/v1/status", timeout=5).json()


# --- the operator, killed again and again ------------------------------------------------------


LOCAL_OPERATOR = "operator-test"


@pytest.fixture
def local_operator(router: Router, kube: Kube, layout) -> Iterator[None]:
    """The platform's operator pod stands down (scaled to 0) so that this test can kill and restart an
    operator process of its own at will, with its own settings; the pod comes back afterwards."""
    deployment = f"{platform.RELEASE}-operator"
    kube.run("scale", "deployment", deployment, "-n", platform.NAMESPACE, "--replicas=0")
    eventually(lambda: not platform.component_pods(layout, "operator"), timeout=60, what="the operator pod to go")
    try:
        _restart_operator(layout, kube)
        yield
    finally:
        procs.stop(layout, LOCAL_OPERATOR)
        kube.run("scale", "deployment", deployment, "-n", platform.NAMESPACE, "--replicas=1")
        kube.run("rollout", "status", "deployment", deployment, "-n", platform.NAMESPACE, "--timeout=120s")


def _kill_operator(layout) -> None:
    pid = procs.pid_of(layout, LOCAL_OPERATOR)
    assert pid, "the operator is not running"
    os.killpg(pid, signal.SIGKILL)
    eventually(lambda: procs.pid_of(layout, LOCAL_OPERATOR) is None, timeout=10, what="the operator to die")


def _restart_operator(layout, kube: Kube) -> int:
    """A new operator; returns its pid once it holds the lease (it waits out the dead one's)."""
    pid = procs.start(
        layout,
        LOCAL_OPERATOR,
        [sys.executable, "-m", "tts_operator"],
        env={
            "KUBECONFIG": str(layout.kubeconfig()),
            "PYTHONUNBUFFERED": "1",
            "KUBETTS_WATCH_NAMESPACES": "",
            "KUBETTS_INFERENCE_IMAGE": platform.image_ref(layout, "inference"),
            "KUBETTS_ROUTER_METRICS_URLS": f"{platform.router_url()}/metrics",
            "KUBETTS_AUTOSCALE_PERIOD_SECONDS": "2",
            "KUBETTS_LEASE_NAMESPACE": platform.NAMESPACE,
            "KUBETTS_HEALTH_HOST": "127.0.0.1",
            "KUBETTS_HEALTH_PORT": str(OPERATOR_HEALTH_PORT),
        },
    )

    def leader() -> bool:
        lease = kube.get("lease", "kube-tts-operator", platform.NAMESPACE)
        return bool(lease and lease["spec"].get("holderIdentity", "").endswith(f"_{pid}"))

    eventually(leader, timeout=60, what="the restarted operator to take the lease")
    return pid


def test_operator_killed_repeatedly_while_reconciling_converges_without_duplicates_or_orphans(
    kube: Kube, namespace: str, layout, monkeypatch: pytest.MonkeyPatch, local_operator: None
):
    names = [f"r{i:03d}" for i in range(100)]
    alive = list(names)
    objects = [tts_deployment(n, replicas=0) for n in names]

    def items(round_: int) -> list[dict]:
        env = [{"name": "ROUND", "value": str(round_)}] if round_ else []
        return [{**o, "spec": {**o["spec"], "env": env}} for o in objects if o["metadata"]["name"] in alive]

    def rounds() -> dict[str, str]:
        """Deployment name -> the ROUND its pod template carries."""
        out = {}
        for d in kube.list("deployments", namespace):
            env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])}
            out[d["metadata"]["name"]] = env.get("ROUND", "0")
        return out

    # the restarted operators hold 5-second leases, so that every further kill costs seconds, not 15
    monkeypatch.setenv("KUBETTS_LEASE_DURATION_SECONDS", "5")
    at_kill: list[tuple[int, int]] = []  # (children applied for the round, objects in the round)
    try:
        kube.create({"apiVersion": "v1", "kind": "List", "items": items(0)}, namespace)
        eventually(lambda: len(rounds()) >= 3, timeout=30, interval=0.05, what="the first Deployments")
        _kill_operator(layout)
        at_kill.append((len(rounds()), len(alive)))
        for round_ in (1, 2):
            # while no operator runs: every spec changes, and ten owners go away
            gone, alive[:] = alive[:10], alive[10:]
            kube.run("delete", "ttsdeployment", "-n", namespace, "--wait=false", *gone)
            kube.apply({"apiVersion": "v1", "kind": "List", "items": items(round_)}, namespace)
            _restart_operator(layout, kube)
            eventually(
                lambda r=str(round_): sum(v == r for v in rounds().values()) >= 1,
                timeout=60,
                interval=0.05,
                what=f"the operator to start on round {round_}",
            )
            _kill_operator(layout)
            at_kill.append((sum(v == str(round_) for v in rounds().values()), len(alive)))
    finally:
        monkeypatch.delenv("KUBETTS_LEASE_DURATION_SECONDS")
    _restart_operator(layout, kube)
    # every kill interrupted work in progress (otherwise this test would not test what it says)
    assert all(0 < done < total for done, total in at_kill), at_kill

    expected = sorted(f"tts-{n}" for n in alive)

    def converged():
        owners = {o["metadata"]["name"]: o for o in kube.list("ttsdeployments", namespace)}
        if sorted(owners) != sorted(alive):
            return None
        deployments = kube.list("deployments", namespace)
        services = kube.list("services", namespace)
        if sorted(d["metadata"]["name"] for d in deployments) != expected:
            return None
        if sorted(s["metadata"]["name"] for s in services) != expected:
            return None
        for o in owners.values():
            ready = next((c for c in o.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
            if o.get("status", {}).get("observedGeneration") != o["metadata"]["generation"] or ready is None:
                return None
        return owners, deployments, services

    owners, deployments, services = eventually(
        converged, timeout=180, interval=1, what="every TtsDeployment with exactly its children and its status"
    )
    for child in deployments + services:
        owner = owners[child["metadata"]["name"].removeprefix("tts-")]
        controllers = [r for r in child["metadata"].get("ownerReferences", []) if r.get("controller")]
        assert [r["uid"] for r in controllers] == [owner["metadata"]["uid"]], child["metadata"]
        assert child["metadata"]["labels"]["tts.kubetts.io/deployment"] == owner["metadata"]["name"]
    assert set(rounds().values()) == {"2"}, "a Deployment kept an old pod template"
    for o in owners.values():
        ready = next(c for c in o["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ScaledToZero"), ready
    # one ReplicaSet per pod template the Deployment has had (the rounds), none for deleted owners
    by_owner: dict[str, int] = {}
    for rs in kube.list("replicasets", namespace):
        owner_name = rs["metadata"]["ownerReferences"][0]["name"]
        by_owner[owner_name] = by_owner.get(owner_name, 0) + 1
    assert set(by_owner) <= set(expected), set(by_owner) - set(expected)
    assert max(by_owner.values()) <= 3, by_owner
    print(f"\nkills at (applied, total) = {at_kill}; {len(alive)} TtsDeployments converged")


# --- an inference pod deleted mid-stream -------------------------------------------------------


def test_pod_deleted_mid_stream_fails_its_clients_cleanly_and_nothing_else(router: Router, models: Models, kube: Kube):
    name = models.create("midstream", replicas=2)
    eventually(
        lambda: httpx.get(f"{router.url}/v1/models/{name}", headers=router.headers()).json()["ready_replicas"] == 2,
        timeout=30,
        what="the router to see both replicas",
    )
    pods = {p["metadata"]["name"]: p for p in models.pods(name) if pod_ready(p)}

    def busy() -> dict[str, int]:
        return {n: pod_status(p)["inflight_requests"] for n, p in pods.items()}

    traffic = Traffic(router, name)
    survivor_audio: list[bytes] = []
    with router.speech_stream(model=name, input=LONG_TEXT, response_format="pcm", speed=0.5) as plain:
        plain_chunks = plain.iter_raw()
        assert plain.status_code == 200 and next(plain_chunks)
        (victim,) = [n for n, count in busy().items() if count == 1]
        (survivor,) = [n for n in pods if n != victim]
        with router.speech_stream(model=name, input=MEDIUM_TEXT, response_format="pcm", speed=0.5) as concurrent:
            concurrent_chunks = concurrent.iter_raw()
            assert concurrent.status_code == 200
            survivor_audio.append(next(concurrent_chunks))
            # least outstanding: the second stream went to the other pod
            assert busy() == {victim: 1, survivor: 1}, busy()
            with router.speech_stream(
                model=name, input=LONG_TEXT, response_format="pcm", speed=0.5, stream_format="sse"
            ) as events:
                sse_lines = events.iter_lines()
                assert events.status_code == 200
                first = next(line for line in sse_lines if line.startswith("data:"))
                assert json.loads(first[5:])["type"] in ("speech.status", "speech.audio.delta"), first
                # a tie goes to the pod used longest ago: the SSE stream is on the victim too
                assert busy() == {victim: 2, survivor: 1}, busy()

                reader = threading.Thread(target=lambda: survivor_audio.extend(concurrent_chunks), daemon=True)
                reader.start()
                with traffic.running():
                    t_delete = time.monotonic()
                    kube.run("delete", "pod", victim, "-n", router.namespace, "--grace-period=1", "--wait=false")
                    # the plain stream ends with an error, not as if it were complete
                    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                        for _ in plain_chunks:
                            pass
                    # the SSE stream ends with an error event
                    rest = sse_events("\n\n".join(line for line in sse_lines if line.startswith("data:")).encode())
                    assert rest and rest[-1]["type"] == "error", rest[-3:]
                    assert rest[-1]["error"]["code"] == "upstream_unavailable", rest[-1]
                    assert time.monotonic() - t_delete < 30
                    time.sleep(5)  # requests keep flowing after the pod is gone
                reader.join(timeout=60)
                assert not reader.is_alive(), "the concurrent stream on the other pod hung"
    # the stream on the other pod arrived whole: all twenty sentences, at half speed
    audio = decode_pcm(b"".join(survivor_audio), 22050)
    assert audio.duration > 40 and audio.rms > 500, (audio.duration, audio.rms)
    # every request sent while and after the pod went away was served by the other pod
    sent = [o for o in traffic.outcomes if o.started >= t_delete]
    assert len(sent) >= 4, traffic.outcomes
    assert {o.status for o in sent} == {200}, [o.status for o in sent]
    assert all(o.seconds > 1 for o in sent)
    # nothing is left hanging: no request in flight or queued at the router, none at the survivor
    eventually(
        lambda: (
            router_metric(router, "kubetts_router_inflight_requests", deployment=name) == 0
            and router_metric(router, "kubetts_router_queued_requests", deployment=name) == 0
        ),
        timeout=10,
        what="the router to count every request finished",
    )

    def survivor_idle() -> bool:
        try:
            return pod_status(pods[survivor])["inflight_requests"] == 0
        except httpx.ConnectError:
            # refused: idle only if the pod is really gone (seen once: replaced meanwhile)
            return survivor not in {p["metadata"]["name"] for p in models.pods(name)}

    eventually(survivor_idle, timeout=10, what="the survivor idle")
    assert router_metric(router, "kubetts_router_requests_total", deployment=name, code="502") == 2
    print(f"\npod deleted mid-stream: 2 streams cut cleanly, {len(sent)} requests during and after it all 200")


# --- the kube-apiserver away while requests flow -----------------------------------------------


def test_apiserver_down_while_requests_flow(router: Router, models: Models, kube: Kube, layout):
    name = models.create("apiflow")
    wait_router_sees(router, name)
    sleepy = models.create("apisleepy", wait_ready=False, replicas=0, **ESPEAK)
    eventually(
        lambda: httpx.get(f"{router.url}/v1/models/{sleepy}", headers=router.headers()).status_code == 200,
        timeout=30,
        what="the router to know the sleeping model",
    )
    operator_pid = platform.component_pid(layout, "operator")
    lease = kube.get("lease", "kube-tts-operator", platform.NAMESPACE)
    holder = lease["spec"]["holderIdentity"] if lease else None
    assert operator_pid and holder, "the platform's operator pod runs and leads"
    lists_before = router_metric(router, "kubetts_router_watch_lists_total", kind="pods")
    assert lists_before is not None
    traffic = Traffic(router, name)
    woke: list[httpx.Response] = []
    with traffic.running():
        time.sleep(2)
        t_down = time.monotonic()
        procs.stop(layout, "kube-apiserver")
        try:
            time.sleep(1)
            # the router answers from what it knows
            listed = httpx.get(f"{router.url}/v1/models/{name}", headers=router.headers(), timeout=10)
            assert listed.status_code == 200 and listed.json()["ready"] is True, listed.text
            # a request for the sleeping model waits for it to wake
            waker = threading.Thread(
                target=lambda: woke.append(router.speak(sleepy, input=SHORT)),
                daemon=True,
            )
            waker.start()
            time.sleep(4)
        finally:
            t_up = time.monotonic()
            ControlPlane(layout).start_apiserver()
        time.sleep(3)
    during = traffic.between(t_down, t_up)
    assert len(during) >= 2, f"only {len(during)} requests while the apiserver was down"
    assert {o.status for o in traffic.outcomes} == {200}, [o.status for o in traffic.outcomes if o.status != 200]
    assert all(o.seconds > 1 for o in traffic.outcomes)

    # the request that arrived for the sleeping model was served once the apiserver came back
    waker.join(timeout=120)
    assert woke and woke[0].status_code == 200, woke[0].text if woke else "no answer"
    assert decode_wav(woke[0].content).duration > 1

    # the router's watches listed again; the operator lived through it and still leads
    eventually(
        lambda: (router_metric(router, "kubetts_router_watch_lists_total", kind="pods") or 0) > lists_before,
        timeout=60,
        what="the pod watch to re-list",
    )
    assert platform.component_pid(layout, "operator") == operator_pid
    lease = kube.get("lease", "kube-tts-operator", platform.NAMESPACE)
    assert lease and lease["spec"]["holderIdentity"] == holder
    # and both act on what happens afterwards: a new model gets its children, its status, and speaks
    after = models.create("apiafter", wait_ready=False, replicas=0, **ESPEAK)
    eventually(lambda: kube.get("deployment", f"tts-{after}", router.namespace), timeout=30, what="its Deployment")
    resp = router.speak(after, input=SHORT)
    assert resp.status_code == 200, resp.text
    assert decode_wav(resp.content).duration > 1
    print(
        f"\napiserver down {t_up - t_down:.1f} s: {len(during)} requests meanwhile, "
        f"{len(traffic.outcomes)} in all, every one 200"
    )
