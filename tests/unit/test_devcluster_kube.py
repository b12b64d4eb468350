"""The node agent's Kubernetes client against a fake apiserver: kubeconfig loading (an exec plugin's
token), raw-path calls, errors, and the informer's list → watch → re-list on 410."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from tts_devcluster.kube import KubeApiError, KubeClient, informer

JSON = dict[str, Any]

EXEC_CREDENTIAL = {
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": "from-the-plugin"},
}


class FakeApiserver:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], str, JSON | None]] = []
        self.lists = 0
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append(
            (request.method, request.path, dict(request.query), request.headers.get("Authorization", ""), body)
        )
        if request.headers.get("Content-Type", "").startswith("application/strategic-merge-patch+json"):
            return web.json_response({"patched": body})
        if request.path == "/api/v1/pods" and request.query.get("watch") != "true":
            self.lists += 1
            items = [{"metadata": {"name": f"listed-{self.lists}", "resourceVersion": "1"}}]
            return web.json_response({"metadata": {"resourceVersion": str(self.lists)}, "items": items})
        if request.path == "/api/v1/pods":
            resp = web.StreamResponse()
            await resp.prepare(request)
            events = [
                {"type": "ADDED", "object": {"metadata": {"name": "watched", "resourceVersion": "7"}}},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}},
                {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}},
            ]
            for event in events:
                await resp.write(json.dumps(event).encode() + b"\n")
            await resp.write_eof()
            return resp
        return web.json_response({"kind": "Status", "code": 404}, status=404)


@pytest.fixture
async def apiserver(tmp_path: Path):
    fake = FakeApiserver()
    await fake.server.start_server()
    plugin = [sys.executable, "-c", f"print({json.dumps(json.dumps(EXEC_CREDENTIAL))})"]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": str(fake.server.make_url(""))}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": EXEC_CREDENTIAL["apiVersion"],
                        "command": plugin[0],
                        "args": plugin[1:],
                    }
                },
            }
        ],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    client = await KubeClient.from_kubeconfig(path)
    yield fake, client
    await client.close()
    await fake.server.close()


async def test_raw_calls_carry_the_exec_plugins_token_and_map_errors(apiserver):
    fake, client = apiserver
    patched = await client.patch("/api/v1/namespaces/n/pods/p/status", {"status": {"phase": "Running"}}, strategic=True)
    assert patched == {"patched": {"status": {"phase": "Running"}}}
    with pytest.raises(KubeApiError) as err:
        await client.get("/api/v1/namespaces/n/secrets/missing")
    assert err.value.status == 404
    assert {auth for *_, auth, _ in fake.seen} == {"Bearer from-the-plugin"}


async def test_informer_lists_watches_from_the_listing_and_relists_on_410(apiserver):
    fake, client = apiserver
    synced: list[list[str]] = []
    events: list[tuple[str, str]] = []
    two_lists = asyncio.Event()

    async def on_sync(items: list[JSON]) -> None:
        synced.append([i["metadata"]["name"] for i in items])
        if len(synced) == 2:
            two_lists.set()

    async def on_event(kind: str, obj: JSON) -> None:
        events.append((kind, obj["metadata"]["name"]))

    task = asyncio.create_task(
        informer(client, "/api/v1/pods", on_event, params={"labelSelector": "a=b"}, on_sync=on_sync)
    )
    await asyncio.wait_for(two_lists.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert synced[:2] == [["listed-1"], ["listed-2"]]
    assert events[0] == ("ADDED", "watched")  # the bookmark is not passed on
    watches = [query for method, path, query, *_ in fake.seen if query.get("watch") == "true"]
    assert watches[0]["resourceVersion"] == "1" and watches[0]["labelSelector"] == "a=b"
    assert watches[0]["allowWatchBookmarks"] == "true"
