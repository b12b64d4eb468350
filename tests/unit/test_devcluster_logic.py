import pytest
from tts_devcluster.agent.allocation import GpuAllocator, Ipam, NodeInfo
from tts_devcluster.agent.podspec import (
    condition,
    expand,
    field_value,
    identity,
    pod_phase,
    probe_spec,
    resource_value,
)
from tts_devcluster.agent.probes import ProbeState
from tts_devcluster.net import ServiceRule, render_service_rules

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
    "spec": {
        "nodeName": "n1",
        "serviceAccountName": "sa",
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "runAsNonRoot": True},
    },
}


def test_env_expansion_follows_kubernetes_rules():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"


def test_downward_api_fields():
    assert field_value(POD, "metadata.name", "10.1.1.2", "10.0.0.1") == "p"
    assert field_value(POD, "status.podIP", "10.1.1.2", "10.0.0.1") == "10.1.1.2"
    assert field_value(POD, "metadata.labels['app']", "", "") == "x"
    with pytest.raises(ValueError, match="unsupported fieldRef"):
        field_value(POD, "spec.nonsense", "", "")


def test_resource_field_ref_rounds_up_with_divisor():
    c = {"resources": {"limits": {"memory": "1536Mi", "cpu": "500m"}}}
    assert resource_value(c, {"resource": "limits.memory", "divisor": "1Gi"}) == "2"
    assert resource_value(c, {"resource": "limits.cpu", "divisor": "1m"}) == "500"


def test_identity_container_overrides_pod():
    ident = identity(POD, {"securityContext": {"runAsUser": 5, "allowPrivilegeEscalation": False}})
    assert (ident.uid, ident.groups, ident.no_new_privs, ident.run_as_non_root) == (5, (2000,), True, True)


def test_pod_phase():
    running = ({"running": {}}, 0)
    waiting_first = ({"waiting": {}}, 0)
    backoff = ({"waiting": {"reason": "CrashLoopBackOff"}}, 2)
    ok = ({"terminated": {"exitCode": 0}}, 0)
    bad = ({"terminated": {"exitCode": 3}}, 0)
    assert pod_phase("Always", False, [running]) == "Pending"
    assert pod_phase("Always", True, [waiting_first]) == "Pending"
    assert pod_phase("Always", True, [running, ok]) == "Running"
    assert pod_phase("Always", True, [backoff]) == "Running"
    assert pod_phase("Never", True, [ok]) == "Succeeded"
    assert pod_phase("Never", True, [ok, bad]) == "Failed"
    assert pod_phase("OnFailure", True, [bad]) == "Running"


def test_probe_spec_resolves_named_ports_and_thresholds_decide():
    c = {"name": "c", "ports": [{"name": "http", "containerPort": 8000}]}
    spec = probe_spec(c, {"httpGet": {"path": "/readyz", "port": "http"}, "failureThreshold": 2})
    assert (spec.kind, spec.port, spec.path) == ("http", 8000, "/readyz")
    state = ProbeState(spec)
    assert state.record(True) is True
    assert state.record(False) is None
    assert state.record(False) is False
    assert state.record(False) is None  # already decided, no change


def test_condition_keeps_transition_time_while_unchanged():
    prev = [condition("Ready", True, "t1", [])]
    assert condition("Ready", True, "t2", prev)["lastTransitionTime"] == "t1"
    assert condition("Ready", False, "t3", prev)["lastTransitionTime"] == "t3"


def test_ipam_and_gpus():
    node = NodeInfo("n1", "10.244.0.1", "10.244.9.0/24", 2)
    ipam = Ipam()
    assert ipam.allocate(node, "a", None) == "10.244.9.2"
    assert ipam.allocate(node, "b", "10.244.9.50") == "10.244.9.50"
    assert ipam.allocate(node, "c", "10.244.9.50") == "10.244.9.3"  # preferred already taken
    ipam.release(node, "a")
    assert ipam.allocate(node, "d", None) == "10.244.9.2"
    gpus = GpuAllocator()
    assert gpus.allocate(node, "a", 1) == [0]
    assert gpus.allocate(node, "b", 1) == [1]
    with pytest.raises(ValueError, match="GPU"):
        gpus.allocate(node, "c", 1)


def test_service_rules_spread_evenly_and_reject_without_endpoints():
    text = render_service_rules(
        [
            ServiceRule("10.96.0.10", 80, "TCP", (("10.244.1.2", 8000), ("10.244.1.3", 8000), ("10.244.1.4", 8000))),
            ServiceRule("10.96.0.11", 80, "TCP", ()),
        ]
    )
    dnat = [line for line in text.splitlines() if "DNAT" in line]
    assert len(dnat) == 3
    assert "--probability 0.33333" in dnat[0] and "--probability 0.50000" in dnat[1]
    assert "probability" not in dnat[2]
    assert "-d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset" in text
    assert text.count("COMMIT") == 2
    # only a pod reaching itself is masqueraded; everyone else keeps their address
    hairpin = [line for line in text.splitlines() if "MASQUERADE" in line]
    assert len(hairpin) == 3 and all("-s 10.244.1." in h and "-d 10.244.1." in h for h in hairpin)


def test_a_pod_ip_always_gets_the_same_mac():
    from tts_devcluster.net import pod_mac

    assert pod_mac("10.244.3.5") == "0a:58:0a:f4:03:05"
    assert pod_mac("10.244.3.5") == pod_mac("10.244.3.5") != pod_mac("10.244.3.6")


def test_service_rules_take_ready_endpoints_by_port_name_and_hosts_name_services():
    from tts_devcluster.agent.services import ServiceProxy, service_rules

    svc = {
        "metadata": {"namespace": "ns", "name": "web"},
        "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]},
    }
    headless = {"metadata": {"namespace": "ns", "name": "db"}, "spec": {"clusterIP": "None"}}
    endpoints = {
        "metadata": {"namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.244.1.2"], "conditions": {"ready": True}},
            {"addresses": ["10.244.1.3"], "conditions": {"ready": False}},
        ],
    }
    rules, services = service_rules([svc, headless], [endpoints])
    assert rules == [ServiceRule("10.96.0.9", 80, "TCP", (("10.244.1.2", 8080),))]
    assert services == [("ns", "web", "10.96.0.9")]
    proxy = ServiceProxy(None, lambda: None)  # type: ignore[arg-type]
    proxy._services = services
    assert proxy.hosts("ns") == [("10.96.0.9", ["web.ns.svc.cluster.local", "web.ns.svc", "web.ns", "web"])]
    assert proxy.hosts("other")[0][1][-1] == "web.ns"
