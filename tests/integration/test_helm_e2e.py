"""The whole stack installed with Helm on the local cluster, as a platform team would.

Operator and router run as pods under their chart service accounts in a namespace that enforces
the `restricted` Pod Security level. The locally-run operator and router that the other
integration tests use are stopped for the duration (two operators would fight) and restarted
afterwards.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI
from tts_devcluster import platform
from tts_devcluster.layout import Layout

from tests.helpers import decode_wav, eventually

from .conftest import Kube, pod_ready, run_tool

NS = "kube-tts-e2e"
RELEASE = "kt"
VALUES = [
    "samples.enabled=true",
    "router.hpa.enabled=false",  # no metrics-server here
    "router.replicas=2",
    "operator.autoscalePeriodSeconds=2",
]


def helm(layout: Layout, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_tool(layout, "helm", *args, check=check, timeout=600)


@pytest.fixture(scope="module")
def release(kube: Kube, layout: Layout, crds: None) -> Iterator[str]:
    platform.uninstall(layout)  # two operators would fight over the same objects
    kube.run("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NS,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    try:
        args = ["install", RELEASE, str(layout.repo / "charts" / "kube-tts"), "-n", NS, "--wait", "--timeout", "5m"]
        for v in VALUES + platform.chart_values(layout, keys=False):
            args += ["--set", v]
        t0 = time.monotonic()
        helm(layout, *args)
        print(f"\nhelm install --wait: {time.monotonic() - t0:.1f}s")
        yield RELEASE
    finally:
        helm(layout, "uninstall", RELEASE, "-n", NS, "--wait", check=False)
        kube.run("delete", "namespace", NS, "--wait=false", check=False)
        platform.start_components(layout)


def router_url(kube: Kube) -> str:
    svc = kube.get("service", f"{RELEASE}-kube-tts-router", NS)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def api_key(kube: Kube) -> str:
    secret = kube.get("secret", f"{RELEASE}-kube-tts-api-keys", NS)
    return base64.b64decode(secret["data"]["api-keys"]).decode().split()[0]


def test_components_run_as_pods_under_their_own_service_accounts(kube: Kube, release: str):
    pods = kube.list("pods", NS, f"app.kubernetes.io/instance={RELEASE}")
    by_component = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in pods}
    assert {"operator", "router", "mcp"} <= set(by_component)
    for component in ("operator", "router", "mcp"):
        pod = by_component[component]
        assert pod_ready(pod), component
        assert pod["spec"]["serviceAccountName"] == f"{RELEASE}-kube-tts-{component}"
    # the namespace really enforces `restricted`: an ordinary pod without the hardening is refused
    bad = kube.run("run", "plain", "-n", NS, "--image=busybox", "--", "sleep", "1", check=False)
    assert bad.returncode != 0 and 'violates PodSecurity "restricted:latest"' in bad.stderr, bad.stderr


# (component, verb, resource, namespace, allowed): what each service account may and may not do
RBAC = [
    ("operator", "create", "deployments.apps", NS, True),
    ("operator", "patch", "ttsdeployments.tts.kubetts.io/status", NS, True),
    ("operator", "patch", "ttsdeployments.tts.kubetts.io/scale", NS, False),  # sleeping is the router's
    ("operator", "update", "leases.coordination.k8s.io", NS, False),  # only its own lease, by name
    ("operator", "create", "deployments.apps", "kube-system", False),
    ("operator", "get", "secrets", "kube-system", False),
    ("operator", "list", "nodes", "", False),
    ("router", "patch", "ttsdeployments.tts.kubetts.io/scale", NS, True),
    ("router", "create", "ttsvoices.tts.kubetts.io", NS, True),
    ("router", "watch", "pods", NS, True),
    ("router", "list", "nodes", "", True),
    ("router", "delete", "deployments.apps", NS, False),
    ("router", "get", "secrets", NS, False),  # its keys are a mounted file, not an API read
    ("router", "patch", "ttsdeployments.tts.kubetts.io", NS, False),  # the scale subresource only
    ("mcp", "list", "pods", NS, False),
    ("mcp", "get", "ttsdeployments.tts.kubetts.io", NS, False),
]


@pytest.mark.parametrize(
    ("component", "verb", "resource", "namespace", "allowed"),
    RBAC,
    ids=[f"{c}-{v}-{r.replace('.tts.kubetts.io', '').replace('/', '-')}-{n or 'cluster'}" for c, v, r, n, _ in RBAC],
)
def test_rbac_lets_each_component_do_its_job_and_no_more(
    kube: Kube, release: str, component, verb, resource, namespace, allowed
):
    # `can-i VERB TYPE/NAME` reads the part after the slash as an object name: a subresource is a flag
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{NS}:{RELEASE}-kube-tts-{component}"]
    args += [f"--subresource={subresource}"] if subresource else []
    args += ["-n", namespace] if namespace else []
    answer = kube.run(*args, check=False).stdout.strip()
    assert answer == ("yes" if allowed else "no"), f"{component} {verb} {resource} in {namespace or 'cluster'}"


def test_sample_model_speaks_through_the_installed_router(kube: Kube, release: str):
    eventually(
        lambda: (
            (o := kube.get("ttsdeployment", "joe", NS))
            and any(c["type"] == "Ready" and c["status"] == "True" for c in o.get("status", {}).get("conditions", []))
        ),
        timeout=180,
        interval=1,
        what="the sample model Ready (reconciled by the chart's operator)",
    )
    voice = eventually(
        lambda: (
            (v := kube.get("ttsvoice", "joe-narrator", NS))
            and any(c["type"] == "Ready" and c["status"] == "True" for c in v.get("status", {}).get("conditions", []))
            and v
        ),
        timeout=90,
        interval=1,
        what="the sample voice Ready",
    )
    assert voice["spec"]["speaker"] == "en_US-joe-medium"
    sdk = OpenAI(base_url=f"{router_url(kube)}/v1", api_key=api_key(kube), max_retries=3)
    speech = sdk.audio.speech.create(
        model="joe", voice="joe-narrator", input="Installed with Helm, and speaking.", response_format="wav"
    )
    audio = decode_wav(speech.content)
    assert audio.duration > 1.0 and audio.rms > 500


async def test_an_agent_speaks_through_the_installed_mcp_server(kube: Kube, release: str):
    import base64 as b64

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    svc = kube.get("service", f"{RELEASE}-kube-tts-mcp", NS)
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/mcp"
    # what an in-cluster agent sends: the Service's name as Host (the server refuses others)
    headers = {"Authorization": f"Bearer {api_key(kube)}", "Host": f"{RELEASE}-kube-tts-mcp.{NS}.svc:8090"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool(
            "synthesize_speech", {"text": "An agent speaks through Helm.", "model": "joe", "format": "wav"}
        )
        assert not result.is_error, result.content
        (block,) = [b for b in result.content if b.type == "audio"]
        audio = decode_wav(b64.b64decode(block.data))
        assert audio.duration > 1.0 and audio.rms > 500
    async with httpx2.AsyncClient(timeout=30) as raw:
        anonymous = await raw.post(url, json={}, headers={"Host": headers["Host"]})
        assert anonymous.status_code == 401


def test_helm_test_passes(layout: Layout, kube: Kube, release: str):
    # the test pod decodes the audio itself and fails on short or silent speech; it is deleted once
    # it succeeds (hook-succeeded), so nothing is left behind for uninstall
    result = helm(layout, "test", RELEASE, "-n", NS, "--timeout", "5m")
    assert "Phase:          Succeeded" in result.stdout, result.stdout
    assert not kube.get("pod", f"{RELEASE}-kube-tts-test-speak", NS)


def test_upgrade_changes_a_value_without_downtime_of_ready_models(layout: Layout, kube: Kube, release: str):
    url, key = router_url(kube), api_key(kube)
    inference_before = {p["metadata"]["uid"] for p in kube.list("pods", NS, "tts.kubetts.io/deployment=joe")}
    routers_before = {p["metadata"]["uid"] for p in kube.list("pods", NS, "app.kubernetes.io/component=router")}
    results: list[int | str] = []
    stop = threading.Event()

    def traffic() -> None:
        # a fresh connection each time, like many independent clients
        while not stop.is_set():
            try:
                r = httpx.post(
                    f"{url}/v1/audio/speech",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "joe", "input": "Still here.", "response_format": "wav"},
                    timeout=30,
                )
                results.append(r.status_code)
            except httpx.HTTPError as exc:
                results.append(type(exc).__name__)
            time.sleep(0.2)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        args = [
            "upgrade",
            RELEASE,
            str(layout.repo / "charts" / "kube-tts"),
            "-n",
            NS,
            "--wait",
            "--timeout",
            "5m",
            "--reuse-values",
            "--set",
            "router.logLevel=debug",
        ]
        helm(layout, *args)
        time.sleep(3)
    finally:
        stop.set()
        worker.join(timeout=60)
    routers_after = {
        p["metadata"]["uid"]
        for p in kube.list("pods", NS, "app.kubernetes.io/component=router")
        if not p["metadata"].get("deletionTimestamp")
    }
    assert routers_after and not routers_after & routers_before, "the router pods were replaced"
    inference_after = {p["metadata"]["uid"] for p in kube.list("pods", NS, "tts.kubetts.io/deployment=joe")}
    assert inference_after == inference_before, "the ready model kept its pod"
    failures = [r for r in results if r != 200]
    assert len(results) >= 10 and not failures, f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
    print(f"\n{len(results)} requests during the upgrade, all 200")


def test_uninstall_leaves_nothing_but_the_crds(layout: Layout, kube: Kube, release: str):
    helm(layout, "uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "3m")
    selector = f"app.kubernetes.io/instance={RELEASE}"

    def leftovers() -> list[str]:
        out = kube.run(
            "get",
            "deployments,services,serviceaccounts,roles,rolebindings,networkpolicies,pdb,ttsdeployments,ttsvoices,pods",
            "-n",
            NS,
            "-o",
            "name",
            check=False,
        ).stdout.split()
        return [o for o in out if not o.startswith("serviceaccount/default")]

    remaining = eventually(
        lambda: not leftovers() or None, timeout=120, interval=1, what="everything in the namespace to be gone"
    )
    assert remaining
    assert not kube.run("get", "clusterroles", "-l", selector, "-o", "name").stdout.strip()
    assert not kube.get("secret", f"{RELEASE}-kube-tts-api-keys", NS)
    # CRDs are never removed by Helm (that would delete every user's TtsDeployment)
    assert kube.get("crd", "ttsdeployments.tts.kubetts.io")


SCENARIOS = sorted((Layout.default().repo / "charts" / "kube-tts" / "ci").glob("*-values.yaml"))


@pytest.mark.parametrize("values", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_ci_scenario_is_accepted_by_the_apiserver(layout: Layout, kube: Kube, release: str, values):
    """The rendered objects of each scenario pass the real apiserver's validation and admission
    (server-side dry run: schemas, CRD validation of the samples, Pod Security)."""
    rendered = helm(
        layout,
        "template",
        "other",
        str(layout.repo / "charts" / "kube-tts"),
        "-n",
        NS,
        "-f",
        str(values),
        "--kube-version",
        "1.36.3",
    ).stdout
    result = kube.run("apply", "--dry-run=server", "-n", NS, "-f", "-", input_=rendered, check=False)
    assert result.returncode == 0, result.stderr
