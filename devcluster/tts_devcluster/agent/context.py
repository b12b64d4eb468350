"""What a pod worker may use of the node agent, and nothing more.

The worker (one pod's life) gets a :class:`PodContext`; :class:`~.agent.NodeAgent` implements it,
and a unit test can hand a worker a fake one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from ..kube import KubeClient
from .allocation import GpuAllocator, Ipam
from .envsources import PodEnvironment
from .images import ImageStore
from .runtime import Runc

JSON = dict[str, Any]


@dataclass(frozen=True)
class ProcessMode:
    """Opt-in (ADR 0040): the images (shell patterns) whose containers run as processes from the
    checkout instead, started by ``python -m tts_devcluster.agent.launcher``."""

    patterns: tuple[str, ...]
    python: str  # the interpreter that runs the launcher
    path_env: str  # PATH of a process container: the checkout's venv first
    expose_paths: tuple[str, ...]  # what a non-root process must be able to reach

    def matches(self, image: str) -> bool:
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self.patterns)


@dataclass(frozen=True)
class Sandbox:
    """The node-wide side of a pod sandbox: addresses, GPUs, firewalls (the policy agent) and the
    Service names for /etc/hosts (kube-proxy's side)."""

    ipam: Ipam
    gpus: GpuAllocator
    sync_policies: Callable[[], Awaitable[None]]
    service_hosts: Callable[[str], list[tuple[str, list[str]]]]


class PodContext(Protocol):
    """Everything a :class:`~.worker.PodWorker` uses of the node agent."""

    client: KubeClient  # pod status, final deletion, volume sources
    state_dir: Path  # one directory per pod below it
    images: ImageStore
    runc: Runc
    process_mode: ProcessMode
    env: PodEnvironment
    sandbox: Sandbox
    kubernetes_service: tuple[str, int]  # the ``kubernetes`` Service's ClusterIP and port

    @property
    def http(self) -> aiohttp.ClientSession:
        """For HTTP probes and preStop hooks."""
        ...

    async def event(
        self, pod: JSON, reason: str, message: str, warning: bool = False, container: str | None = None
    ) -> None:
        """Record an Event about ``pod`` (or one of its containers), as the kubelet does."""
        ...
