from tts_api.routing import Endpoint, LeastOutstanding, endpoints_for, pod_is_ready


def pod(name, deployment="joe", ready=True, ip="10.0.0.1", deleting=False):
    meta = {"name": name, "labels": {"tts.kubetts.io/deployment": deployment}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


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
