from tts_api.routing import EarlyReady, Endpoint, LeastOutstanding, endpoints_for, pod_is_ready, pod_is_starting


def pod(name, deployment="joe", ready=True, ip="10.0.0.1", deleting=False, uid="u1", changed=None, phase="Running"):
    meta = {"name": name, "uid": uid, "labels": {"tts.kubetts.io/deployment": deployment}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    if changed:
        condition["lastTransitionTime"] = changed
    return {"metadata": meta, "status": {"podIP": ip, "phase": phase, "conditions": [condition]}}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def test_only_ready_pods_with_ip_of_the_deployment_are_endpoints():
    pods = {
        "a": pod("a", ip="10.0.0.1"),
        "b": pod("b", ready=False),
        "c": pod("c", deployment="other"),
        "d": pod("d", ip=""),
        "e": pod("e", deleting=True),
    }
    assert endpoints_for("joe", pods) == [Endpoint("a", "10.0.0.1", 8000)]
    assert not pod_is_ready({"metadata": {}, "status": {}})


def test_least_outstanding_spreads_and_respects_cap():
    eps = [Endpoint("a", "1", 8000), Endpoint("b", "2", 8000)]
    lb = LeastOutstanding(per_pod_cap=2)
    picks = [lb.pick(eps) for _ in range(4)]
    assert sorted(p.pod for p in picks) == ["a", "a", "b", "b"]
    assert lb.pick(eps) is None  # both at the cap
    lb.release(picks[0])
    assert lb.pick(eps) == picks[0]


def test_exclude_skips_pods_that_refused():
    eps = [Endpoint("a", "1", 8000), Endpoint("b", "2", 8000)]
    lb = LeastOutstanding(per_pod_cap=4)
    assert lb.pick(eps, exclude={"a"}).pod == "b"
    assert lb.pick(eps, exclude={"a", "b"}) is None


def test_a_starting_pod_seen_ready_by_the_router_is_an_endpoint_until_kubernetes_speaks():
    clock = Clock(T0)
    early = EarlyReady(ttl=10, clock=clock)
    starting = pod("s", ready=False, changed="2027-01-15T07:59:58Z")  # NotReady since before the probe
    pods = {"s": starting, "r": pod("r", ip="10.0.0.2")}
    assert pod_is_starting(starting) and not pod_is_starting(pods["r"])
    assert endpoints_for("joe", pods, early) == [Endpoint("r", "10.0.0.2", 8000)]
    assert [p["metadata"]["name"] for p in early.to_probe("joe", pods)] == ["s"]

    early.mark(starting)
    assert [e.pod for e in endpoints_for("joe", pods, early)] == ["r", "s"]
    assert early.to_probe("joe", pods) == []  # no need to ask again
    assert endpoints_for("other", pods, early) == []

    # the kubelet found it unready after the router's probe: Kubernetes wins
    pods["s"] = pod("s", ready=False, changed="2027-01-15T08:00:03Z")
    clock.now = T0 + 4
    assert [e.pod for e in endpoints_for("joe", pods, early)] == ["r"]


def test_an_early_entry_lapses_and_never_outlives_its_pod():
    clock = Clock(T0)
    early = EarlyReady(ttl=10, clock=clock)
    starting = pod("s", ready=False, changed="2027-01-15T07:59:58Z")
    early.mark(starting)
    assert early.admits(starting)
    assert not early.admits(pod("s", ready=False, uid="u2"))  # a new pod of the same name
    early.mark(starting)
    assert not early.admits(pod("s", ready=False, deleting=True))  # being deleted
    early.mark(starting)
    assert not early.admits(pod("s", ready=False, phase="Pending"))
    early.mark(starting)
    clock.now = T0 + 11
    assert not early.admits(starting)  # the kubelet had ten seconds to say Ready
    assert not early.admits(starting)  # and the entry is gone
    early.mark(starting)
    assert not early.admits(pod("s", ready=False, changed="not a time"))


def test_early_entries_of_pods_that_went_away_do_not_pile_up():
    clock = Clock(T0)
    early = EarlyReady(ttl=10, clock=clock)
    for i in range(5):
        early.mark(pod(f"gone-{i}", ready=False, uid=f"u{i}"))
        clock.now += 3
    # each mark drops what lapsed: only the entries of the last ten seconds are left
    assert len(early) == 4
    clock.now += 20
    early.mark(pod("new", ready=False))
    assert len(early) == 1


def test_an_endpoint_carries_its_pods_container_restarts():
    p = pod("a")
    (fresh,) = endpoints_for("joe", {"a": p})
    assert fresh.restarts == 0
    p["status"]["containerStatuses"] = [{"name": "inference", "restartCount": 2}]
    (restarted,) = endpoints_for("joe", {"a": p})
    assert restarted.restarts == 2 and restarted == fresh  # the same endpoint, a newer server
