"""The router's API surface on the local cluster: keys and scopes, status with GPU capacity,
metrics, request limits, rate limit, CORS, and a schemathesis run that finds no server error."""

from __future__ import annotations

import httpx
import pytest
from schemathesis import GenerationMode

from tests.helpers import fuzz_without_server_errors

from .conftest import Kube, Router

ADMIN_ROUTES = [
    ("POST", "/v1/models/{model}/wake"),
    ("POST", "/v1/models/{model}/sleep"),
    ("DELETE", "/v1/audio/voices/someone"),
]
USER_ROUTES = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/v1/audio/voices"),
    ("GET", "/v1/status"),
    ("POST", "/v1/audio/speech"),
]


def test_keys_and_scopes(router: Router, speaker: str):
    for method, path in ADMIN_ROUTES + USER_ROUTES:
        url = router.url + path.format(model=speaker)
        body = {"json": {"model": speaker, "input": "Hi."}} if method == "POST" else {}
        none = httpx.request(method, url, **body)
        assert none.status_code == 401 and none.json()["error"]["code"] == "missing_api_key", (path, none.text)
        assert none.json()["error"]["type"] == "authentication_error" and none.headers["www-authenticate"] == "Bearer"
        wrong = httpx.request(method, url, headers={"Authorization": "Bearer sk-wrong"}, **body)
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key", path
        basic = httpx.request(method, url, headers={"Authorization": f"Basic {router.key}"}, **body)
        assert basic.status_code == 401, path
    for method, path in ADMIN_ROUTES:
        user = httpx.request(method, router.url + path.format(model=speaker), headers=router.headers())
        assert user.status_code == 403 and user.json()["error"]["code"] == "insufficient_scope", path
    # admin keys can do what user keys can
    assert httpx.get(f"{router.url}/v1/models", headers=router.headers(admin=True)).status_code == 200
    # probes and metrics need no key
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert httpx.get(router.url + path).status_code == 200, path


def test_status_reports_deployments_pods_and_gpus(router: Router, kube: Kube, speaker: str):
    resp = httpx.get(f"{router.url}/v1/status", headers=router.headers(), timeout=30)
    assert resp.status_code == 200, resp.text
    status = resp.json()
    assert status["synced"] is True and status["errors"] == []
    mine = next(d for d in status["deployments"] if d["name"] == speaker)
    assert mine["ready_replicas"] == 1 and mine["scaled_to_zero"] is False and mine["replicas"] == 1
    (pod,) = mine["pods"]
    assert pod["ready"] and pod["inference"]["engine"] == "piper" and pod["inference"]["ready"] is True
    assert "inflight_requests" in pod["inference"]
    # GPU capacity per node, and what the scheduled pods request, as the cluster says
    nodes = {n["node"]: n for n in status["nodes"]}
    assert nodes["kt-gpu-h100"]["resources"]["nvidia.com/gpu"]["capacity"] == 2
    assert nodes["kt-gpu-l4"]["resources"]["nvidia.com/gpu"]["allocatable"] == 4
    assert nodes["kt-gpu-l4"]["product"] == "NVIDIA-L4"
    assert "kt-cpu" not in nodes
    # the chart's router may read pods in its own namespace only, so that is what it counts (and says)
    assert status["gpu_requested_scope"] == "namespace"
    for node, entry in nodes.items():
        selector = f"spec.nodeName={node},status.phase!=Succeeded,status.phase!=Failed"
        limits = "jsonpath={range .items[*]}{.spec.containers[*].resources.limits.nvidia\\.com/gpu}{' '}{end}"
        listed = kube.run("get", "pods", "-n", router.namespace, "--field-selector", selector, "-o", limits)
        pods = listed.stdout.split()
        assert entry["resources"]["nvidia.com/gpu"]["requested"] == sum(int(x) for x in pods), node


def test_request_limits_and_bad_bodies_are_4xx(router: Router, speaker: str):
    url = f"{router.url}/v1/audio/speech"
    headers = router.headers()
    too_big = httpx.post(url, headers=headers, content=b"{" + b" " * (17 * 1024 * 1024) + b"}", timeout=60)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
    cases = [
        (b"not json", 400),
        (b'{"model": "' + speaker.encode() + b'"}', 400),  # no input
        (b'{"model": "' + speaker.encode() + b'", "input": "hi", "speed": 9}', 400),
        (b'{"model": "' + speaker.encode() + b'", "input": "hi", "response_format": "ogg"}', 400),
        (b'{"model": "' + speaker.encode() + b'", "input": "hi", "surprise": 1}', 400),
        (b'{"model": "no-such-model", "input": "hi"}', 404),
        (b'{"model": "' + speaker.encode() + b'", "input": "' + b"a" * 5000 + b'"}', 400),
    ]
    for body, status in cases:
        resp = httpx.post(url, headers={**headers, "Content-Type": "application/json"}, content=body, timeout=30)
        assert resp.status_code == status, (body[:80], resp.text)
        assert set(resp.json()["error"]) >= {"message", "type", "code"}


def test_rate_limit_per_key_with_retry_after(spawn_router):
    limited = spawn_router(rate_limit_per_second="0.5", rate_limit_burst="3")
    codes = [httpx.get(f"{limited.url}/v1/models", headers=limited.headers()).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429], codes
    resp = httpx.get(f"{limited.url}/v1/models", headers=limited.headers())
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    # another key has its own bucket
    assert httpx.get(f"{limited.url}/v1/models", headers=limited.headers(admin=True)).status_code == 200


def test_cors_is_off_by_default_and_limited_to_configured_origins(router: Router, spawn_router):
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in httpx.options(f"{router.url}/v1/models", headers=preflight).headers
    cors = spawn_router(cors_origins="https://ui.example")
    allowed = httpx.options(f"{cors.url}/v1/audio/speech", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://ui.example"
    assert "access-control-allow-credentials" not in allowed.headers
    other = httpx.options(f"{cors.url}/v1/audio/speech", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_for_any_request(spawn_router, namespace: str, mode: GenerationMode):
    """Schemathesis against /openapi.json, with an admin key, on a router of its own over an empty
    namespace (so the fuzzer may try any write). Bounded: 25 examples per operation and mode."""
    target = spawn_router(namespace=namespace, rate_limit_per_second="0")
    tried = fuzz_without_server_errors(target.url, target.headers(admin=True), mode)
    # negative mode: only operations with typed input (the speech and voice bodies, query) can be broken
    assert len(tried) >= (10 if mode == GenerationMode.POSITIVE else 3), tried
