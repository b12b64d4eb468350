"""The node agent's Kubernetes client: kubernetes_asyncio's kubeconfig loading and ApiClient, with
the few raw-path calls a kubelet makes and a list/watch informer.

The agent hands pods around as the JSON the apiserver sent (it patches ``pods/status`` with
strategic-merge patches and reads fields the typed models would drop or rename), so it calls
paths, not the typed API classes. Everything else (certificates inline or in files, tokens, exec
plugins, TLS, the connection pool) is kubernetes_asyncio's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration

log = logging.getLogger(__name__)

JSON = dict[str, Any]

USER_AGENT = "kube-tts-node-agent/0.1"
WATCH_SECONDS = 240  # the apiserver ends each watch after this; the informer watches again


class KubeApiError(Exception):
    """The apiserver answered with an HTTP error (not to be confused with ``tts_crds.ApiError``, the
    error our HTTP services render)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class WatchExpired(Exception):
    """The resourceVersion is too old (410 Gone): re-list and watch again."""


class KubeClient:
    """JSON in, JSON out, on raw API paths, through a kubernetes_asyncio ``ApiClient``."""

    def __init__(self, api: ApiClient, token_refresh: asyncio.Task[None] | None = None) -> None:
        self.api = api
        self.api.user_agent = USER_AGENT
        self._token_refresh = token_refresh

    @classmethod
    async def from_kubeconfig(cls, path: Path) -> KubeClient:
        """The current context of ``path``, read as kubectl reads it; tokens from exec plugins are
        refreshed in the background until :meth:`close`."""
        configuration = Configuration()
        loader = await config.load_kube_config(
            config_file=str(path), client_configuration=configuration, persist_config=False
        )
        configuration.connection_pool_maxsize = 32
        # returns at once unless the credential is one that expires (exec plugin, gcp)
        refresh = asyncio.create_task(config.refresh_token(loader, configuration), name="kubeconfig token refresh")
        return cls(ApiClient(configuration), refresh)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._token_refresh is not None:
            self._token_refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._token_refresh
        await self.api.close()

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: Any,
        content_type: str,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - a per-request aiohttp timeout
    ) -> aiohttp.ClientResponse:
        """The response unread (the caller reads and releases it), whatever its status."""
        response: aiohttp.ClientResponse = await self.api.call_api(
            path,
            method,
            query_params=list(params.items()) if params else None,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,  # noqa: ASYNC109 - a per-request aiohttp timeout
    ) -> JSON:
        resp = await self._send(method, path, params, body, content_type, aiohttp.ClientTimeout(total=timeout))
        async with resp:
            text = await resp.text()
            if resp.status >= 400:
                raise KubeApiError(resp.status, text)
            return json.loads(text) if text else {}

    async def get(self, path: str, **params: str) -> JSON:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def delete(self, path: str, body: JSON | None = None) -> JSON:
        return await self.request("DELETE", path, body=body)

    async def patch(self, path: str, body: JSON, strategic: bool = False) -> JSON:
        ctype = "application/strategic-merge-patch+json" if strategic else "application/merge-patch+json"
        return await self.request("PATCH", path, body=body, content_type=ctype)

    async def watch(self, path: str, resource_version: str, **params: str) -> AsyncIterator[JSON]:
        """Yield watch events until the server closes the stream (callers loop)."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
            **params,
        }
        timeout = aiohttp.ClientTimeout(total=WATCH_SECONDS + 60, sock_read=WATCH_SECONDS + 60)
        resp = await self._send("GET", path, query, None, "application/json", timeout)
        async with resp:
            if resp.status == 410:
                raise WatchExpired()
            if resp.status >= 400:
                raise KubeApiError(resp.status, await resp.text())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    if event.get("object", {}).get("code") == 410:
                        raise WatchExpired()
                    raise KubeApiError(event["object"].get("code", 500), json.dumps(event["object"]))
                yield event


async def informer(
    client: KubeClient,
    path: str,
    on_event: Callable[[str, JSON], Awaitable[None]],
    *,
    params: dict[str, str] | None = None,
    on_sync: Callable[[list[JSON]], Awaitable[None]] | None = None,
    retry_delay: float = 1.0,
) -> None:
    """List then watch ``path`` forever, calling ``on_event(type, obj)``; re-lists on expiry or error.

    On every (re-)list, ``on_sync(objects)`` receives the full set so the caller can drop what
    disappeared while it was not watching.
    """
    params = params or {}
    while True:
        try:
            listing = await client.get(path, **params)
            rv = listing["metadata"]["resourceVersion"]
            if on_sync is not None:
                await on_sync(listing.get("items", []))
            while True:
                async for event in client.watch(path, rv, **params):
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] != "BOOKMARK":
                        await on_event(event["type"], obj)
        except asyncio.CancelledError:
            raise
        except WatchExpired:
            log.info("watch of %s expired; re-listing", path)
        except (TimeoutError, aiohttp.ClientError, KubeApiError, OSError) as exc:
            log.warning("watch of %s failed (%s); retrying in %.0fs", path, exc, retry_delay)
            await asyncio.sleep(retry_delay)
