"""What the operator holds while it runs: one typed object in Kopf's ``memo`` (``memo.runtime``).

Kopf gives every object a shallow copy of the memo, so everything that changes lives in this one
object that the copies share, never in a memo attribute that is reassigned.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds.plan import Plan

from . import autoscale, kube
from .settings import OperatorSettings

log = logging.getLogger("tts_operator")

Key = tuple[str, str]  # (namespace, name)


def key_of(body: kopf.Body | dict[str, Any]) -> Key:
    meta = body["metadata"]
    return (str(meta["namespace"]), str(meta["name"]))


class Scrape:
    """The latest sum of the routers' load, shared by every handler."""

    def __init__(self) -> None:
        self.taken_at = 0.0
        self.loads: dict[Key, autoscale.Load] | None = None

    def update(self, loads: dict[Key, autoscale.Load] | None) -> None:
        self.loads = loads
        self.taken_at = time.time()

    def load_of(self, key: Key, max_age: float) -> autoscale.Load | None:
        """A deployment's load; None when no router answered recently (then nobody decides)."""
        if self.loads is None or time.time() - self.taken_at > max_age:
            return None
        return self.loads.get(key, autoscale.Load())


class ObjectCache:
    """The latest TtsDeployments and TtsVoices as the event stream shows them."""

    def __init__(self) -> None:
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.voices: dict[Key, dict[str, Any]] = {}
        self.voice_schedule: dict[Key, tuple[float, float]] = {}  # key -> (next check, back-off)

    def update(self, store: dict[Key, dict[str, Any]], kind: str | None, body: kopf.Body) -> Key:
        key = key_of(body)
        if kind == "DELETED":
            store.pop(key, None)
            self.voice_schedule.pop(key, None)
        else:
            store[key] = copy.deepcopy(dict(body))
        return key


class Debouncer:
    """Run ``fn(*key)`` soon after ``schedule(key)``; bursts of calls coalesce into one run."""

    def __init__(self, fn: Callable[[str, str], Awaitable[None]], delay: float = 0.2) -> None:
        self.fn = fn
        self.delay = delay
        self.tasks: dict[Key, asyncio.Task[None]] = {}
        self.dirty: set[Key] = set()

    def schedule(self, key: Key) -> None:
        task = self.tasks.get(key)
        if task is not None and not task.done():
            self.dirty.add(key)
            return
        self.tasks[key] = asyncio.create_task(self._run(key))

    async def _run(self, key: Key) -> None:
        while True:
            await asyncio.sleep(self.delay)
            self.dirty.discard(key)
            try:
                await self.fn(*key)
            except ApiException as exc:
                log.warning("status of %s/%s not refreshed: %s %s", *key, exc.status, exc.reason)
            except Exception:  # a background task must survive anything and say why
                log.exception("status of %s/%s not refreshed", *key)
            if key not in self.dirty:
                return

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def _no_refresh(_namespace: str, _name: str) -> None:
    return None


@dataclass
class Runtime:
    """Clients, caches and per-object memory, built once at startup."""

    settings: OperatorSettings
    api: client.ApiClient
    kube: kube.Kube
    http: aiohttp.ClientSession
    scrape: Scrape = field(default_factory=Scrape)
    cache: ObjectCache = field(default_factory=ObjectCache)
    scale_memory: dict[Key, autoscale.Memory] = field(default_factory=dict)
    # (kind, namespace, child name) -> generation our last apply produced
    applied_generation: dict[tuple[str, str, str], int | None] = field(default_factory=dict)
    # TtsDeployment -> its generation whose spec has been applied
    reconciled: dict[Key, int | None] = field(default_factory=dict)
    # TtsDeployment -> (reason, message) while its spec cannot be applied (InvalidSpec, ApplyFailed)
    blocked: dict[Key, tuple[str, str]] = field(default_factory=dict)
    # TtsJob -> (uid, its plan): read back from the plan ConfigMap after a restart
    plans: dict[Key, tuple[str, Plan]] = field(default_factory=dict)
    # TtsJob -> (uid, chunk key -> seconds) of the chunks its polls found done (job_files.scan);
    # both dropped when the job finishes
    counted: dict[Key, tuple[str, dict[str, float]]] = field(default_factory=dict)
    refresher: Debouncer = field(default_factory=lambda: Debouncer(_no_refresh))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def forget(self, key: Key) -> None:
        """A TtsDeployment is gone: drop what was remembered about it."""
        self.scale_memory.pop(key, None)
        self.reconciled.pop(key, None)
        self.blocked.pop(key, None)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.refresher.close()
        await self.http.close()
        await self.api.close()


def runtime_of(memo: kopf.Memo) -> Runtime:
    rt: Runtime = memo.runtime
    return rt
