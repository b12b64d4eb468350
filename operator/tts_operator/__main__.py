"""``python -m tts_operator``: run the operator; with leader election only the Lease holder acts."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

import kopf
from aiohttp import web
from kubernetes_asyncio import client, config

from . import handlers  # noqa: F401  (registers the handlers)
from .leader import LeaseLock, LostLeadership, identity
from .settings import OperatorSettings

log = logging.getLogger("tts_operator")


class Health:
    """``GET /healthz`` on the health port: 200 while the process works, leader or standby."""

    def __init__(self) -> None:
        self.role = "starting"

    async def handle(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": self.role})

    async def serve(self, host: str, port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/healthz", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner


async def run(settings: OperatorSettings) -> int:
    health = Health()
    runner = await health.serve(settings.health_host, settings.health_port)
    try:
        return await _run(settings, health)
    finally:
        await runner.cleanup()


async def _run(settings: OperatorSettings, health: Health) -> int:
    namespaces = settings.namespaces

    def operate() -> Coroutine[Any, Any, None]:
        # an explicit identity: Kopf's default asks the passwd database, which has no entry for an
        # arbitrary non-root uid (runAsUser: 65532 in a plain image, OpenShift's random uids)
        return kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            identity=identity(),  # type: ignore[arg-type]
            # the handlers' one copy of the settings (handlers.startup reads it; nothing reads the environment)
            memo=kopf.Memo(settings=settings),
        )

    if not settings.leader_election:
        health.role = "leader"
        await operate()
        return 0
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    async with client.ApiClient() as api:
        lock = LeaseLock(api, settings.resolved_lease_namespace(), settings.lease_name, settings.lease_duration_seconds)
        while True:
            health.role = "standby"
            await lock.acquire()
            health.role = "leader"
            operator = asyncio.create_task(operate())
            holder = asyncio.create_task(lock.hold())
            done, _ = await asyncio.wait({operator, holder}, return_when=asyncio.FIRST_COMPLETED)
            if holder in done:
                operator.cancel()
                await asyncio.gather(operator, return_exceptions=True)
                exc = holder.exception()
                if not isinstance(exc, LostLeadership):
                    log.error("stopping: lease renewal failed (%r)", exc)
                    return 1
                # Reconciling has stopped (a successor may hold the lease by now). The process
                # stays: as a standby it takes the lease again once the apiserver lets it, without
                # waiting for its container to be restarted (ADR 0035).
                log.error("stopped reconciling: %s; standing by to take the lease again", exc)
                continue
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
            await lock.release()
            operator.result()
            return 0


def main() -> None:
    settings = OperatorSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Kopf logs every successful handler and timer run at INFO: with a timer per object every few
    # seconds that drowns what matters. Our own log lines say what was done.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
