"""Integration fixtures: the local cluster (started if it is not running) and kubectl helpers.

Every test gets its own namespace, deleted afterwards. Tests that need the router use the
platform's namespace (the router serves one namespace) with uniquely named objects.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tts_devcluster import cli, platform
from tts_devcluster.layout import Layout

from tests.helpers import eventually

pytestmark = pytest.mark.integration


@dataclass
class Kube:
    layout: Layout

    def run(self, *args: str, input_: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.layout.tool("kubectl"), "--kubeconfig", str(self.layout.kubeconfig()), *args],
            capture_output=True,
            text=True,
            input=input_,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> None:
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.run(*args, input_=json.dumps(obj))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
        proc = self.run(*args, check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def list(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
        return json.loads(self.run(*args).stdout)["items"]

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        out = self.run(
            "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
        ).stdout
        return json.loads(out)["items"]

    def wait_pod(self, namespace: str, name: str, predicate, timeout: float = 60, what: str = "pod state"):
        return eventually(
            lambda: (p := self.get("pod", name, namespace)) and predicate(p) and p,
            timeout=timeout,
            what=f"{namespace}/{name}: {what}",
        )


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


@dataclass(frozen=True)
class Router:
    url: str
    key: str
    namespace: str

    @staticmethod
    def wait_model_ready(client: Any, name: str, timeout: float = 30) -> None:
        """The router learns of a ready pod through its watch: allow it a moment."""
        eventually(
            lambda: any(m["id"] == name and m["ready"] for m in client.get("/v1/models").json()["data"]),
            timeout=timeout,
            what=f"router sees {name} ready",
        )


@pytest.fixture(scope="session")
def layout() -> Layout:
    return Layout.default()


@pytest.fixture(scope="session")
def cluster(layout: Layout) -> Layout:
    """The local control plane, nodes and node agent; started here if not already running."""
    assert cli.main(["cluster-up"]) == 0, "the local cluster did not come up; see .devcluster/logs/"
    return layout


@pytest.fixture(scope="session")
def kube(cluster: Layout) -> Kube:
    return Kube(cluster)


@pytest.fixture(scope="session")
def crds(cluster: Layout) -> None:
    """The kube-tts CRDs, installed and Established."""
    platform.install_crds(cluster)


@pytest.fixture(scope="session")
def router(cluster: Layout, crds: None) -> Router:
    """CRDs, operator and router (the sample model is not needed by the tests)."""
    assert cli.main(["platform-up", "--no-sample"]) == 0
    return Router(platform.router_url(), platform.ensure_api_key(cluster), platform.NAMESPACE)


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    eventually(lambda: kube.get("serviceaccount", "default", name), timeout=30, what="default ServiceAccount")
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def repo_root(layout: Layout) -> Path:
    return layout.repo
