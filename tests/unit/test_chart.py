"""The Helm chart rendered by the real helm binary: structure, security, RBAC, schema.

Installing it for real is the e2e suite's job (tests/e2e); these checks are fast and need no cluster.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from tts_devcluster.layout import Layout

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kube-tts"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([Layout.default().tool("helm"), *args], capture_output=True, text=True, check=check)


def render(*sets: str, namespace: str = "tts") -> list[dict]:
    args = ["template", "kt", str(CHART), "-n", namespace, "--kube-version", "1.36.3"]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    out = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in by_kind(docs, "Deployment")]
    out += [(d["metadata"]["name"], d["spec"]) for d in by_kind(docs, "Pod")]
    return out


def test_chart_crds_are_the_generated_ones():
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), f"{crd.name} differs: run `make crds`"


def test_lint_passes_strictly():
    result = helm("lint", "--strict", str(CHART), "--kube-version", "1.36.3", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_refuses_unknown_keys_and_wrong_types():
    for bad in ("router.bogus=1", "operator.replicas=many", "router.logLevel=loud", "ingress.tls.enabled=maybe"):
        result = helm("template", "kt", str(CHART), "--kube-version", "1.36.3", "--set", bad, check=False)
        assert result.returncode != 0, bad
        assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


def test_every_pod_passes_the_restricted_pod_security_level():
    docs = render("samples.enabled=true", "mcp.enabled=false", "wyoming.enabled=true")
    assert "kt-kube-tts-wyoming" in [name for name, _ in pod_specs(docs)]
    for name, spec in pod_specs(docs):
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert c.get("command"), f"{name}: containers state their command"
        assert all("hostPath" not in v for v in spec.get("volumes", [])), name


def test_rbac_is_namespaced_except_reading_nodes():
    docs = render("mcp.enabled=false")
    cluster_roles = by_kind(docs, "ClusterRole")
    assert [r["rules"] for r in cluster_roles] == [[{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]]
    roles = {r["metadata"]["name"]: r for r in by_kind(docs, "Role")}
    router_rules = roles["kt-kube-tts-router"]["rules"]
    assert {
        "apiGroups": ["tts.kubetts.io"],
        "resources": ["ttsdeployments/scale"],
        "verbs": ["get", "patch"],
    } in router_rules
    assert not any("*" in r["verbs"] or "*" in r["resources"] for role in roles.values() for r in role["rules"])
    # secrets are only ever read, never listed or written; the router reads none unless named
    for role in roles.values():
        for rule in role["rules"]:
            if "secrets" in rule["resources"]:
                assert rule["verbs"] == ["get"]
    assert not any("secrets" in r["resources"] for r in router_rules)
    named = {
        r["metadata"]["name"]: r
        for r in by_kind(render("router.voiceClipSecrets={clips}", "mcp.enabled=false"), "Role")
    }["kt-kube-tts-router"]["rules"]
    assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["clips"], "verbs": ["get"]} in named


def test_operator_watches_listed_namespaces_with_a_role_in_each():
    docs = render("operator.watchNamespaces={team-a,team-b}", "mcp.enabled=false")
    operator_roles = [r for r in by_kind(docs, "Role") if r["metadata"]["name"] == "kt-kube-tts-operator"]
    assert sorted(r["metadata"]["namespace"] for r in operator_roles) == ["team-a", "team-b"]
    env = {
        e["name"]: e.get("value")
        for e in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KUBETTS_WATCH_NAMESPACES"] == "team-a,team-b"
    policies = [p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "kt-kube-tts-inference"]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["team-a", "team-b"]


def test_api_keys_come_from_a_secret_never_from_values():
    docs = render("mcp.enabled=false")
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    assert set(secrets["kt-kube-tts-api-keys"]["data"]) == {"api-keys", "admin-api-keys"}
    # the TtsJob renderers' key has a Secret of its own, made whether or not the API keys are the user's
    assert set(secrets["kt-kube-tts-renderer-key"]["data"]) == {"api-key"}
    existing = render("apiKeys.existingSecret=my-keys", "mcp.enabled=false")
    assert [s["metadata"]["name"] for s in by_kind(existing, "Secret")] == ["kt-kube-tts-renderer-key"]
    assert not by_kind(render("apiKeys.existingSecret=my-keys", "jobs.enabled=false"), "Secret")
    router = next(d for d in by_kind(existing, "Deployment") if d["metadata"]["name"].endswith("router"))
    volumes = router["spec"]["template"]["spec"]["volumes"]
    assert {"name": "keys", "secret": {"secretName": "my-keys", "defaultMode": 0o440}} in volumes


def test_wyoming_server_is_opt_in_and_speaks_with_a_key_from_a_secret():
    assert not [d for d in render() if d["metadata"]["name"] == "kt-kube-tts-wyoming"]
    docs = render("wyoming.enabled=true", "apiKeys.existingSecret=my-keys")
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "kt-kube-tts-wyoming"]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["KUBETTS_URL"]["value"] == "http://kt-kube-tts-router.tts.svc:8080"
    assert env["KUBETTS_API_KEY"] == {
        "name": "KUBETTS_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "my-keys", "key": "api-keys"}},
    }
    assert env["KUBETTS_WYOMING_ZEROCONF"]["value"] == "false"
    own = render("wyoming.enabled=true", "wyoming.apiKey.secretName=ha-key", "wyoming.apiKey.secretKey=key")
    (deployment,) = [d for d in by_kind(own, "Deployment") if d["metadata"]["name"] == "kt-kube-tts-wyoming"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBETTS_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ha-key", "key": "key"}
    (service,) = [d for d in by_kind(docs, "Service") if d["metadata"]["name"] == "kt-kube-tts-wyoming"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "wyoming", "port": 10200, "targetPort": "wyoming", "protocol": "TCP"}]


def test_wyoming_network_policy_admits_its_port_and_lets_out_only_the_router_and_dns():
    docs = render("wyoming.enabled=true", "wyoming.clientPeers[0].ipBlock.cidr=192.168.1.0/24")
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    wyoming = policies["kt-kube-tts-wyoming"]
    assert wyoming["policyTypes"] == ["Ingress", "Egress"]
    assert wyoming["ingress"] == [
        {"ports": [{"port": "wyoming", "protocol": "TCP"}], "from": [{"ipBlock": {"cidr": "192.168.1.0/24"}}]}
    ]
    to_router, to_dns = wyoming["egress"]
    assert to_router["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "router"
    assert to_router["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert {p["port"] for p in to_dns["ports"]} == {53}
    # the router admits the Wyoming server even when it admits only listed client peers
    peers = render("wyoming.enabled=true", "networkPolicy.clientPeers[0].ipBlock.cidr=10.0.0.0/8")
    router = next(p for p in by_kind(peers, "NetworkPolicy") if p["metadata"]["name"] == "kt-kube-tts-router")
    components = [
        f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        for f in router["spec"]["ingress"][0]["from"]
    ]
    assert "wyoming" in components


def test_ingress_with_tls_routes_api_and_mcp():
    docs = render(
        "ingress.enabled=true", "ingress.tls.enabled=true", "ingress.tls.secretName=tts-tls", "ingress.className=nginx"
    )
    ing = by_kind(docs, "Ingress")[0]
    assert ing["spec"]["tls"] == [{"hosts": ["tts.example.com"], "secretName": "tts-tls"}]
    paths = {p["path"]: p["backend"]["service"]["name"] for p in ing["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {"/mcp": "kt-kube-tts-mcp", "/": "kt-kube-tts-router"}
    missing = helm(
        "template",
        "kt",
        str(CHART),
        "--kube-version",
        "1.36.3",
        "--set",
        "ingress.enabled=true",
        "--set",
        "ingress.tls.enabled=true",
        check=False,
    )
    assert "ingress.tls.secretName is required" in missing.stderr


def test_hpa_owns_router_replicas_and_pdb_follows():
    with_hpa = render("mcp.enabled=false")
    router = next(d for d in by_kind(with_hpa, "Deployment") if d["metadata"]["name"].endswith("router"))
    assert "replicas" not in router["spec"]
    assert by_kind(with_hpa, "HorizontalPodAutoscaler")
    single = render("router.hpa.enabled=false", "router.replicas=1", "mcp.enabled=false")
    assert not [p for p in by_kind(single, "PodDisruptionBudget") if p["metadata"]["name"].endswith("router")]


@pytest.mark.parametrize("opt", ["serviceMonitor.enabled=true", "grafanaDashboard.enabled=true"])
def test_optional_monitoring_objects(opt):
    docs = render(opt, "mcp.enabled=false")
    if opt.startswith("grafana"):
        cm = by_kind(docs, "ConfigMap")[0]
        dashboard = json.loads(cm["data"]["kube-tts.json"])
        assert dashboard["title"] == "kube-tts" and dashboard["panels"]
    else:
        assert by_kind(docs, "ServiceMonitor")[0]["spec"]["endpoints"][0]["path"] == "/metrics"


SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))


@pytest.mark.parametrize("values", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_ci_scenarios_lint_and_render(values: Path):
    assert (
        helm("lint", "--strict", str(CHART), "-f", str(values), "--kube-version", "1.36.3", check=False).returncode == 0
    )
    docs = [
        d
        for d in yaml.safe_load_all(
            helm("template", "kt", str(CHART), "-f", str(values), "--kube-version", "1.36.3").stdout
        )
        if d
    ]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Role"} <= kinds
    if "ingress" in values.name:
        assert "Ingress" in kinds
    if "existing-secret" in values.name:  # only the renderers' key, which is always the chart's
        assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"] == ["kt-kube-tts-renderer-key"]
    if values.name.startswith("gpu"):
        sample = next(d for d in docs if d["kind"] == "TtsDeployment")
        assert sample["spec"]["resources"]["gpu"] == 1


def test_helm_unittest_suites_pass():
    """charts/kube-tts/tests/*_test.yaml with the helm-unittest plugin (built by devcluster/build.sh)."""
    import os
    import re

    env = {**os.environ, "HELM_PLUGINS": str(Layout.default().bin.parent / "helm-plugins")}
    result = subprocess.run(
        [Layout.default().tool("helm"), "unittest", str(CHART)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"Tests:\s+(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 15, result.stdout


def test_packaged_chart_keeps_the_helm_test_hook_and_leaves_out_the_unittest_suites(tmp_path: Path):
    # .helmignore patterns without a leading slash match at any depth: `tests/` once dropped templates/tests/
    helm("package", str(CHART), "-d", str(tmp_path))
    (archive,) = tmp_path.glob("kube-tts-*.tgz")

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "kube-tts/templates/tests/test-speak.yaml" in names
    assert not [n for n in names if n.startswith("kube-tts/tests/")]
    hooks = [d for d in render() if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    assert [h["metadata"]["name"] for h in hooks] == ["kt-kube-tts-test-speak"]


def test_operator_may_run_ttsjobs_but_never_update_jobs_or_write_secrets():
    docs = render("mcp.enabled=false")
    (role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"] == "kt-kube-tts-operator"]
    rules = role["rules"]

    def verbs(group: str, resource: str) -> set[str]:
        return {v for r in rules if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]}

    assert {"get", "list", "watch", "patch"} <= verbs("tts.kubetts.io", "ttsjobs")
    assert {"patch"} <= verbs("tts.kubetts.io", "ttsjobs/status")
    assert verbs("tts.kubetts.io", "ttsjobs/finalizers") == {"update"}
    assert verbs("batch", "jobs") == {"get", "list", "watch", "create", "patch", "delete"}
    assert verbs("", "configmaps") == {"get", "list", "watch", "create", "patch", "delete"}
    assert verbs("", "secrets") == {"get"}
    (account,) = [a for a in by_kind(docs, "ServiceAccount") if a["metadata"]["name"] == "kt-kube-tts-renderer"]
    assert account["automountServiceAccountToken"] is False
    bound = {
        s["name"] for b in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding") for s in b["subjects"]
    }
    assert "kt-kube-tts-renderer" not in bound
