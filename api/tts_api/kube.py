"""Watch-backed caches of the objects the router routes by: TtsDeployments and inference Pods.

Each cache lists, then watches from the list's resourceVersion; when the watch expires (410) or
the apiserver goes away it re-lists, so a restart of the apiserver loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("tts_api.kube")
JSON = dict[str, Any]


async def api_client() -> client.ApiClient:
    """In-cluster service-account credentials, else the kubeconfig (local development)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


class Cache:
    """Objects of one kind, by name, kept current by list+watch."""

    def __init__(self, kind: str, list_fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        self.kind = kind
        self._list = list_fn
        self._args = args
        self._kwargs = kwargs
        self.objects: dict[str, JSON] = {}
        self.synced = asyncio.Event()
        self.changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def run(self) -> None:
        while True:
            try:
                resp = await self._list(*self._args, **self._kwargs, _preload_content=False)
                listing = json.loads(await resp.read())
                self.objects = {o["metadata"]["name"]: o for o in listing.get("items", [])}
                rv = listing["metadata"]["resourceVersion"]
                self.synced.set()
                await self._notify()
                while True:
                    w = watch.Watch()
                    async with w.stream(
                        self._list,
                        *self._args,
                        **self._kwargs,
                        resource_version=rv,
                        allow_watch_bookmarks=True,
                        timeout_seconds=240,
                    ) as stream:
                        async for event in stream:
                            obj = event["raw_object"]
                            rv = obj.get("metadata", {}).get("resourceVersion", rv)
                            if event["type"] == "BOOKMARK":
                                continue
                            name = obj["metadata"]["name"]
                            if event["type"] == "DELETED":
                                self.objects.pop(name, None)
                            else:
                                self.objects[name] = obj
                            await self._notify()
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status == 410:
                    log.info("%s watch expired; re-listing", self.kind)
                    continue
                log.warning("%s watch failed: %s %s; retrying", self.kind, exc.status, exc.reason)
                await asyncio.sleep(1)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("%s watch lost (%s); retrying", self.kind, exc)
                await asyncio.sleep(1)
