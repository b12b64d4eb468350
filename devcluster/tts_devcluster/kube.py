"""A small asyncio Kubernetes REST client for the node agent.

The agent speaks to the apiserver the way a kubelet does: JSON in, JSON out, watches with
resourceVersion and bookmarks, strategic-merge patches of ``pods/status``. A typed client would
only add weight here, so this stays a thin layer over aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

log = logging.getLogger(__name__)

JSON = dict[str, Any]


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
    def __init__(self, server: str, ssl_ctx: ssl.SSLContext, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_ctx
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeClient:
        cfg = yaml.safe_load(path.read_text())
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        ssl_ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
        if "client-certificate" in user:
            ssl_ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        return cls(cluster["server"], ssl_ctx, user.get("token"))

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "kube-tts-node-agent/0.1"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._session = aiohttp.ClientSession(
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=32),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

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
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method,
            self.server + path,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
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
            "timeoutSeconds": "240",
            **params,
        }
        async with self.session.get(
            self.server + path, params=query, timeout=aiohttp.ClientTimeout(total=300, sock_read=300)
        ) as resp:
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
    on_event: Any,
    *,
    params: dict[str, str] | None = None,
    on_sync: Any = None,
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
