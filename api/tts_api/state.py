"""Everything the router holds while it runs, created in the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from kubernetes_asyncio import client
from tts_crds import names

from .kube import Cache, api_client
from .routing import Endpoint, LeastOutstanding, endpoints_for
from .settings import RouterSettings

log = logging.getLogger("tts_api")


@dataclass
class RouterState:
    settings: RouterSettings
    namespace: str
    api: client.ApiClient
    deployments: Cache
    pods: Cache
    http: httpx.AsyncClient
    balancer: LeastOutstanding
    keys: frozenset[str]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def synced(self) -> bool:
        return self.deployments.synced.is_set() and self.pods.synced.is_set()

    def endpoints(self, deployment: str) -> list[Endpoint]:
        return endpoints_for(deployment, self.pods.objects)


@contextlib.asynccontextmanager
async def router_state(settings: RouterSettings) -> AsyncIterator[RouterState]:
    api = await api_client()
    namespace = settings.resolved_namespace()
    objects = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    deployments = Cache(
        "ttsdeployments",
        objects.list_namespaced_custom_object,
        names.GROUP,
        names.VERSION,
        namespace,
        names.DEPLOYMENT_PLURAL,
    )
    selector = f"{names.LABEL_COMPONENT}={names.COMPONENT_INFERENCE},{names.LABEL_MANAGED_BY}={names.MANAGER}"
    pods = Cache("pods", core.list_namespaced_pod, namespace, label_selector=selector)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.upstream_read_timeout, connect=settings.upstream_connect_timeout),
        limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256),
    )
    keys = settings.keys()
    if not keys and not settings.auth_disabled:
        log.warning("no API keys configured and auth is not disabled: every request will get 401")
    state = RouterState(
        settings, namespace, api, deployments, pods, http, LeastOutstanding(settings.pod_concurrency), keys
    )
    state.tasks = [asyncio.create_task(deployments.run()), asyncio.create_task(pods.run())]
    log.info("router serving TtsDeployments in namespace %s", namespace)
    try:
        yield state
    finally:
        for t in state.tasks:
            t.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await http.aclose()
        await api.close()
