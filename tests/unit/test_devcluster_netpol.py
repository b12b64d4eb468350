from tts_devcluster.agent.netpol import Allow, ingress_allows, render_filter, selects


def pod(name, ns, labels, ip, ports=()):
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "status": {"podIP": ip},
        "spec": {"containers": [{"ports": [{"name": n, "containerPort": p} for n, p in ports]}]},
    }


def policy(ns, selector, ingress, types=None):
    spec = {"podSelector": selector, "ingress": ingress}
    if types:
        spec["policyTypes"] = types
    return {"metadata": {"name": "p", "namespace": ns}, "spec": spec}


NS = {
    "tts": {"metadata": {"name": "tts", "labels": {"kubernetes.io/metadata.name": "tts"}}},
    "other": {"metadata": {"name": "other", "labels": {"team": "web"}}},
}
INFER = pod("infer", "tts", {"component": "inference"}, "10.244.1.2", ports=[("http", 8000)])
ROUTER = pod("router", "tts", {"component": "router"}, "10.244.1.3")
STRANGER = pod("x", "tts", {"component": "x"}, "10.244.1.4")
WEB = pod("web", "other", {"component": "router"}, "10.244.2.2")
PODS = [INFER, ROUTER, STRANGER, WEB]


def test_selector_semantics():
    assert selects({}, {"a": "1"})
    assert selects({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not selects({"matchLabels": {"a": "1"}}, {"a": "2"})
    assert selects({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"})
    assert not selects({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "2"})


def test_unselected_pod_is_open():
    assert ingress_allows(INFER, [], PODS, NS) is None
    assert ingress_allows(INFER, [policy("tts", {"matchLabels": {"component": "router"}}, [])], PODS, NS) is None


def test_only_router_pods_of_the_namespace_on_the_named_port():
    pol = policy(
        "tts",
        {"matchLabels": {"component": "inference"}},
        [{"from": [{"podSelector": {"matchLabels": {"component": "router"}}}], "ports": [{"port": "http"}]}],
    )
    assert ingress_allows(INFER, [pol], PODS, NS) == [Allow("10.244.1.3/32", "TCP", 8000)]


def test_namespace_selector_and_deny_all():
    pol = policy("tts", {}, [{"from": [{"namespaceSelector": {"matchLabels": {"team": "web"}}}]}])
    assert ingress_allows(INFER, [pol], PODS, NS) == [Allow("10.244.2.2/32", None, None)]
    deny = policy("tts", {}, [], types=["Ingress"])
    allows = ingress_allows(INFER, [deny], PODS, NS)
    assert allows == []
    text = render_filter(allows, "10.244.0.1")
    assert "-A INPUT -s 10.244.0.1/32 -j ACCEPT" in text
    assert text.strip().endswith("COMMIT") and "REJECT" in text


def test_ip_block_with_except():
    pol = policy("tts", {}, [{"from": [{"ipBlock": {"cidr": "10.0.0.0/30", "except": ["10.0.0.0/31"]}}]}])
    assert ingress_allows(INFER, [pol], PODS, NS) == [Allow("10.0.0.2/31", None, None)]


def test_open_filter_has_no_rules():
    text = render_filter(None, "10.244.0.1")
    assert "REJECT" not in text and "-A INPUT" not in text
