"""The local cluster behaves like a cluster: scheduling, identity, probes, volumes, logs, deletion."""

from __future__ import annotations

import subprocess
import textwrap
import uuid

from tts_devcluster import platform
from tts_devcluster.layout import REGISTRY, Layout

from tests.helpers import eventually

from .conftest import Kube, pod_ready

# the Python base image every kube-tts image builds on, as `make images` pushes it to the local registry
PYTHON = f"{REGISTRY}/library/python:3.11-slim-bookworm"


def pod(name: str, command: list[str], **spec) -> dict:
    container = {"name": "main", "image": PYTHON, "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 5, **spec},
    }


def serve_behind_a_service(kube: Kube, namespace: str, name: str, command: list[str], label: str) -> None:
    """A pod serving on port 8000 (named http; ready once it accepts connections), labelled
    ``label`` only after it exists, and a Service ``name`` selecting that label, port 80 -> 8000."""
    container = {
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
    }
    kube.apply(pod(name, command, container=container), namespace)
    kube.run("label", "pod", name, "-n", namespace, label)
    key, _, value = label.partition("=")
    service = {"selector": {key: value}, "ports": [{"port": 80, "targetPort": 8000}]}
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": service}, namespace)


GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_gpu_pod_lands_on_a_gpu_node_and_untolerating_pod_does_not(kube: Kube, namespace: str):
    gpu = {"resources": {"limits": {"nvidia.com/gpu": 1}}}
    kube.apply(pod("with-toleration", ["sleep", "600"], tolerations=[GPU_TOLERATION], container=gpu), namespace)
    kube.apply(pod("without-toleration", ["sleep", "600"], container=gpu), namespace)
    placed = kube.wait_pod(namespace, "with-toleration", lambda p: p["spec"].get("nodeName"), what="scheduled")
    node = kube.get("node", placed["spec"]["nodeName"])
    assert node["metadata"]["labels"].get("nvidia.com/gpu.present") == "true"
    assert int(node["status"]["allocatable"]["nvidia.com/gpu"]) >= 1
    kube.wait_pod(namespace, "with-toleration", pod_ready, what="running")

    def failed_scheduling():
        return [e for e in kube.events(namespace, "without-toleration") if e["reason"] == "FailedScheduling"]

    events = eventually(failed_scheduling, timeout=30, what="FailedScheduling event")
    assert "untolerated taint" in events[0]["message"]
    assert not kube.get("pod", "without-toleration", namespace)["spec"].get("nodeName")


LIST_SECRETS = textwrap.dedent("""
    import json, ssl, urllib.request, urllib.error
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = open(sa + "/token").read()
    ns = open(sa + "/namespace").read()
    ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
    req = urllib.request.Request(f"https://kubernetes.default.svc/api/v1/namespaces/{ns}/secrets",
                                 headers={"Authorization": "Bearer " + token})
    try:
        urllib.request.urlopen(req, context=ctx, timeout=5)
        print("RESULT 200", flush=True)
    except urllib.error.HTTPError as e:
        print("RESULT", e.code, json.loads(e.read())["message"], flush=True)
""")


def test_pod_process_acts_as_its_service_account(kube: Kube, namespace: str):
    for sa in ("nobody", "reader"):
        kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}, namespace)
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
        },
        namespace,
    )
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
        namespace,
    )
    for sa in ("nobody", "reader"):
        kube.apply(pod(sa, ["python", "-c", LIST_SECRETS], serviceAccountName=sa, restartPolicy="Never"), namespace)
    for sa in ("nobody", "reader"):
        kube.wait_pod(namespace, sa, lambda p: p["status"].get("phase") == "Succeeded", what="finished")
    denied = kube.run("logs", "-n", namespace, "nobody").stdout
    allowed = kube.run("logs", "-n", namespace, "reader").stdout
    assert f'RESULT 403 secrets is forbidden: User "system:serviceaccount:{namespace}:nobody"' in denied
    assert "RESULT 200" in allowed


def test_volumes_env_and_kubectl_logs(kube: Kube, namespace: str):
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"greeting": "hello from a configmap"},
        },
        namespace,
    )
    kube.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "stringData": {"token": "s3cr3t"}},
        namespace,
    )
    script = (
        "cat /etc/cfg/greeting; echo; cat /etc/sec/token; echo; echo scratch > /scratch/f && cat /scratch/f; "
        "echo IP=$MY_IP NS=$MY_NS FROM_CM=$FROM_CM; id -u; "
        "touch /not-writable 2>/dev/null && echo ROOT-WRITABLE || echo ROOT-READ-ONLY"
    )
    kube.apply(
        pod(
            "vols",
            ["sh", "-c", script],
            restartPolicy="Never",
            securityContext={"runAsUser": 4242, "runAsNonRoot": True},
            volumes=[
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                {"name": "scratch", "emptyDir": {}},
            ],
            container={
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "sec", "mountPath": "/etc/sec", "readOnly": True},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
                "env": [
                    {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                ],
                "securityContext": {"readOnlyRootFilesystem": True},
            },
        ),
        namespace,
    )
    done = kube.wait_pod(
        namespace, "vols", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), what="finished"
    )
    logs = kube.run("logs", "-n", namespace, "vols").stdout
    assert done["status"]["phase"] == "Succeeded", logs
    lines = logs.splitlines()
    assert lines[:3] == ["hello from a configmap", "s3cr3t", "scratch"]
    assert lines[3] == f"IP={done['status']['podIP']} NS={namespace} FROM_CM=hello from a configmap"
    assert lines[4] == "4242"
    assert lines[5] == "ROOT-READ-ONLY"


def test_readiness_follows_the_probe(kube: Kube, namespace: str):
    # the server only starts answering after 3 s: the pod must be Running but not Ready until then
    kube.apply(
        pod(
            "slow",
            ["sh", "-c", "sleep 3; exec python -m http.server 8000"],
            container={
                "ports": [{"name": "http", "containerPort": 8000}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            },
        ),
        namespace,
    )
    running = kube.wait_pod(namespace, "slow", lambda p: p["status"].get("phase") == "Running", what="running")
    assert not pod_ready(running)
    ready = kube.wait_pod(namespace, "slow", pod_ready, timeout=30, what="ready")
    started = ready["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    became_ready = next(c for c in ready["status"]["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
    assert became_ready > started


def test_failing_liveness_probe_restarts_the_container(kube: Kube, namespace: str):
    kube.apply(
        pod(
            "unhealthy",
            # a pid namespace's init ignores SIGTERM unless it handles it (as on any kubelet): the
            # trap makes the exit code say that SIGTERM, not the SIGKILL after the grace period, ended it
            ["sh", "-c", "trap 'exit 143' TERM; while true; do sleep 0.2; done"],
            container={"livenessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2}},
        ),
        namespace,
    )
    restarted = kube.wait_pod(
        namespace,
        "unhealthy",
        lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1,
        timeout=30,
        what="a restart",
    )
    assert restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM
    reasons = {e["reason"] for e in kube.events(namespace, "unhealthy")}
    assert {"Unhealthy", "Killing"} <= reasons


def test_deleting_the_pod_stops_its_process(kube: Kube, namespace: str):
    marker = f"kube-tts-test-{uuid.uuid4().hex}"
    kube.apply(pod("sleeper", ["python", "-c", f"import time  # {marker}\ntime.sleep(600)"]), namespace)
    kube.wait_pod(namespace, "sleeper", pod_ready, what="running")

    def running() -> bool:
        return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0

    assert running()
    kube.run("delete", "pod", "sleeper", "-n", namespace, "--timeout=30s")
    assert not running()
    assert kube.get("pod", "sleeper", namespace) is None


def test_services_route_by_cluster_ip_and_name(kube: Kube, namespace: str):
    serve_behind_a_service(kube, namespace, "web", ["python", "-m", "http.server", "8000"], "app=web")
    kube.wait_pod(namespace, "web", pod_ready, what="ready")

    def endpoint_ready():
        slices = kube.list("endpointslices", namespace, "kubernetes.io/service-name=web")
        return any(e.get("conditions", {}).get("ready") for s in slices for e in s.get("endpoints") or [])

    eventually(endpoint_ready, timeout=30, what="a ready endpoint for the web Service")
    # service programming lags the EndpointSlice by up to a second here (as with kube-proxy): retry briefly
    fetch = textwrap.dedent("""
        import time, urllib.request as u
        for attempt in range(20):
            try:
                print('STATUS', u.urlopen('http://web/', timeout=5).status)
                break
            except OSError as exc:
                print('retry', exc)
                time.sleep(0.5)
    """)
    kube.apply(pod("client", ["python", "-c", fetch], restartPolicy="Never"), namespace)
    done = kube.wait_pod(
        namespace, "client", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=60, what="finished"
    )
    logs = kube.run("logs", "-n", namespace, "client").stdout
    assert done["status"]["phase"] == "Succeeded", logs
    assert "STATUS 200" in logs


def test_process_mode_volume_over_the_checkout_does_not_hide_the_program(
    kube: Kube, namespace: str, repo_root, layout: Layout
):
    # The opt-in process mode (ADR 0040; by default the CUDA inference image's pods) runs the command
    # from the checkout. Like an emptyDir at /tmp when the checkout lives under /tmp: it must still run.
    kube.apply(
        pod(
            "shadowed",
            ["python", "-c", "import tts_crds, sys; print('IMPORTED', sys.version_info[:2])"],
            restartPolicy="Never",
            securityContext={"runAsUser": 4242, "runAsNonRoot": True},
            volumes=[{"name": "scratch", "emptyDir": {}}],
            container={
                "image": platform.image_ref(layout, "inference", "-cuda"),
                "volumeMounts": [{"name": "scratch", "mountPath": str(repo_root)}],
            },
        ),
        namespace,
    )
    done = kube.wait_pod(
        namespace, "shadowed", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), what="finished"
    )
    logs = kube.run("logs", "-n", namespace, "shadowed").stdout
    assert done["status"]["phase"] == "Succeeded", logs
    assert "IMPORTED (3, 11)" in logs


FETCH_WEB = textwrap.dedent("""
    import sys, time, urllib.request as u
    url = sys.argv[1]
    for attempt in range(10):
        try:
            print('STATUS', u.urlopen(url, timeout=3).read().decode().strip(), flush=True)
            break
        except OSError as exc:
            last = exc
            time.sleep(0.5)
    else:
        print('FAILED', last, flush=True)
""")

WHO_CALLS = textwrap.dedent("""
    import http.server
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = self.client_address[0].encode()
            self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
            self.wfile.write(body)
    http.server.HTTPServer(('', 8000), H).serve_forever()
""")


def test_network_policy_admits_only_selected_peers_and_sees_real_sources(kube: Kube, namespace: str):
    serve_behind_a_service(kube, namespace, "server", ["python", "-c", WHO_CALLS], "role=server")
    kube.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "only-clients"},
            "spec": {
                "podSelector": {"matchLabels": {"role": "server"}},
                "ingress": [
                    {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": "http"}]}
                ],
            },
        },
        namespace,
    )
    kube.wait_pod(namespace, "server", pod_ready, what="ready")
    server_ip = kube.get("pod", "server", namespace)["status"]["podIP"]
    for name, role in (("friend", "client"), ("stranger", "other")):
        spec = pod(name, ["python", "-c", FETCH_WEB, "http://server/"], restartPolicy="Never")
        spec["metadata"]["labels"] = {"role": role}
        kube.apply(spec, namespace)
    results = {}
    for name in ("friend", "stranger"):
        done = kube.wait_pod(
            namespace, name, lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=60, what="finished"
        )
        results[name] = (kube.run("logs", "-n", namespace, name).stdout, done["status"]["podIP"])
    friend_logs, friend_ip = results["friend"]
    # through the Service, the server sees the caller's own pod IP (no masquerade)
    assert f"STATUS {friend_ip}" in friend_logs, friend_logs
    assert "FAILED" in results["stranger"][0], results["stranger"][0]
    # the node itself (kubelet probes, host processes) is always admitted
    import httpx

    assert httpx.get(f"http://{server_ip}:8000/", timeout=5).status_code == 200
