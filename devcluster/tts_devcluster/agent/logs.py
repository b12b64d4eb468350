"""The kubelet API's part of the node agent: ``kubectl logs`` (the apiserver proxies
``/containerLogs`` here over TLS with its kubelet-client certificate)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .worker import Container, PodWorker


def kubelet_ssl(pki_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / "node-agent-serving.crt"), str(pki_dir / "node-agent-serving.key"))
    ctx.verify_mode = ssl.CERT_REQUIRED  # only the apiserver's kubelet-client certificate gets in
    return ctx


class LogServer:
    def __init__(self, workers: Mapping[str, PodWorker]) -> None:
        self.workers = workers  # the agent's live map, uid -> worker

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        app.router.add_get("/healthz", _healthz)
        return app

    def _find(self, ns: str, pod: str) -> PodWorker | None:
        return next((w for w in self.workers.values() if w.ns == ns and w.name == pod), None)

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        worker = self._find(ns, pod)
        if worker is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{pod} is not running on this node\n")
        c = next((c for c in worker.init_containers + worker.containers if c.name == container), None)
        if c is None:
            raise web.HTTPNotFound(text=f"container {container} is not valid for pod {pod}\n")
        q = request.query
        previous = q.get("previous") == "true"
        index = c.restart_count - 1 if previous else c.restart_count
        if previous and index < 0:
            raise web.HTTPBadRequest(text=f'previous terminated container "{container}" in pod "{pod}" not found\n')
        path = worker.dir / "logs" / container / f"{index}.log"
        # a container waiting for its restart has no new log yet: show the last one
        if not path.exists() and not previous and index > 0:
            path = worker.dir / "logs" / container / f"{index - 1}.log"
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        if not path.exists():
            await resp.write_eof()
            return resp
        data = path.read_bytes()
        if "tailLines" in q:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(q["tailLines"]) :]) if int(q["tailLines"]) > 0 else b""
        if "limitBytes" in q:
            data = data[: int(q["limitBytes"])]
        await resp.write(data)
        if q.get("follow") == "true" and not previous:
            await _follow(resp, path, worker, c, index)
        await resp.write_eof()
        return resp


async def _follow(resp: web.StreamResponse, path: Path, worker: PodWorker, c: Container, index: int) -> None:
    """Stream what the container appends to its log until it exits or restarts."""
    offset = path.stat().st_size
    while not worker.done and c.restart_count == index:
        await asyncio.sleep(0.25)
        size = path.stat().st_size if path.exists() else offset
        if size > offset:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read(size - offset)
            offset = size
            await resp.write(chunk)
        elif c.proc is None:
            break


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")
