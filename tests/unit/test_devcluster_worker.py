"""A pod worker built against a fake node-agent context (agent/context.py): no cluster, no root."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tts_devcluster.agent.allocation import GpuAllocator, Ipam, NodeInfo
from tts_devcluster.agent.context import ProcessMode, Sandbox
from tts_devcluster.agent.envsources import PodEnvironment
from tts_devcluster.agent.images import ImageError
from tts_devcluster.agent.worker import Container, ContainerConfigError, PodWorker
from tts_devcluster.kube import KubeApiError

JSON = dict[str, Any]
NO_PROCESSES = ProcessMode((), "python3", "/usr/bin", ())
NODE = NodeInfo("n1", "10.244.0.1", "10.244.9.0/24", 0)


class FakeClient:
    def __init__(self, objects: dict[str, JSON]) -> None:
        self.objects = objects

    async def get(self, path: str, **_params: str) -> JSON:
        if path not in self.objects:
            raise KubeApiError(404, "not found")
        return self.objects[path]


class FailingImages:
    def present(self, _image: str) -> None:
        return None

    async def ensure(self, image: str, _policy: str) -> tuple[Any, bool]:
        raise ImageError(f"{image}: manifest unknown")


@dataclass
class FakeContext:
    state_dir: Path
    objects: dict[str, JSON] = field(default_factory=dict)
    events: list[tuple[str, str, bool]] = field(default_factory=list)
    images: Any = field(default_factory=FailingImages)
    runc: Any = None
    http: Any = None
    kubernetes_service: tuple[str, int] = ("10.96.0.1", 443)

    def __post_init__(self) -> None:
        self.process_mode = NO_PROCESSES
        self.client: Any = FakeClient(self.objects)
        self.env = PodEnvironment(self.client)

        async def no_policies() -> None:
            return None

        self.sandbox = Sandbox(Ipam(), GpuAllocator(), no_policies, self.service_hosts)

    def service_hosts(self, namespace: str) -> list[tuple[str, list[str]]]:
        return [("10.96.0.10", [f"db.{namespace}.svc.cluster.local", "db"])]

    async def event(
        self, pod: JSON, reason: str, message: str, warning: bool = False, container: str | None = None
    ) -> None:
        self.events.append((reason, message, warning))


def pod(container: JSON) -> JSON:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "example/app:1", **container}]},
    }


async def test_env_comes_from_values_configmaps_secrets_and_the_downward_api(tmp_path: Path):
    ctx = FakeContext(
        tmp_path,
        {
            "/api/v1/namespaces/ns/configmaps/settings": {"data": {"LEVEL": "debug", "MODE": "fast"}},
            "/api/v1/namespaces/ns/secrets/keys": {"data": {"TOKEN": base64.b64encode(b"s3cret").decode()}},
        },
    )
    spec = {
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
        "env": [
            {"name": "GREETING", "value": "hello $(APP_LEVEL)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "TOKEN"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
    }
    worker = PodWorker(ctx, pod(spec), NODE)
    worker.ip = "10.244.9.2"
    await ctx.env.refresh("ns", spec)
    env = worker._env(Container(spec, init=False))
    assert env["APP_LEVEL"] == "debug" and env["GREETING"] == "hello debug"
    assert env["TOKEN"] == "s3cret" and env["IP"] == "10.244.9.2"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"

    missing = {"envFrom": [{"secretRef": {"name": "nope"}}]}
    await ctx.env.refresh("ns", missing)
    with pytest.raises(ContainerConfigError, match="secret 'nope' not found"):
        worker._env(Container(missing, init=False))


def test_hosts_file_names_the_pod_and_the_services(tmp_path: Path):
    ctx = FakeContext(tmp_path)
    worker = PodWorker(ctx, pod({}), NODE)
    worker.ip = "10.244.9.2"
    worker.dir.mkdir(parents=True)
    worker.write_etc_files()
    hosts = (worker.dir / "etc" / "hosts").read_text()
    assert "10.244.9.2\tp" in hosts and "10.96.0.10\tdb.ns.svc.cluster.local db" in hosts


async def test_a_failed_pull_reports_back_off_and_events(tmp_path: Path):
    ctx = FakeContext(tmp_path)
    worker = PodWorker(ctx, pod({}), NODE)
    worker.terminating.set()  # the back-off waits return at once
    c = worker.containers[0]
    assert await worker._pull(c) is False
    assert c.state["waiting"]["reason"] == "ImagePullBackOff"
    assert [r for r, _, _ in ctx.events] == ["Pulling", "Failed", "Failed", "BackOff"]
    assert all(warning for r, _, warning in ctx.events if r != "Pulling")
