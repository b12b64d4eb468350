"""Everything the router holds while it runs, created in the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from tts_crds import names
from tts_crds.models import Capability, TtsDeploymentSpec

from .activation import Activator
from .aliases import AliasTable, ModelVoices, model_table, model_voices
from .dispatch import Dispatcher
from .kube import Cache, Kube, api_client
from .metrics import RouterMetrics
from .pods import Speakers, get_json
from .routing import EarlyReady, Endpoint, LeastOutstanding, endpoint_of, endpoints_for
from .security import KeyRing, RateLimiter
from .settings import RouterSettings
from .voices import capability_of, deployment_spec

log = logging.getLogger("tts_api")
JSON = dict[str, Any]
ACTIVATION_TIMEOUT_DEFAULT = TtsDeploymentSpec.model_fields["activation_timeout_seconds"].default


@dataclass
class RouterState:
    settings: RouterSettings
    namespace: str
    api: client.ApiClient
    kube: Kube
    deployments: Cache
    voices: Cache
    pods: Cache
    # every call to the inference pods: speech, and the small reads of their status and speakers
    upstream: aiohttp.ClientSession
    dispatcher: Dispatcher
    activator: Activator
    metrics: RouterMetrics
    keys: KeyRing
    limiter: RateLimiter
    speakers: Speakers
    # starting pods seen answering /readyz before the kubelet marked them Ready (ADR 0038)
    early: EarlyReady = field(default_factory=EarlyReady)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # what every speech request would otherwise parse anew from the watch caches: each deployment's
    # spec, the alias table and each model's voices, kept with the objects they were made from and
    # made again once the watch replaced one (it never changes an object in place)
    _specs: dict[str, tuple[JSON, TtsDeploymentSpec | None]] = field(default_factory=dict)
    _aliases: tuple[tuple[JSON, ...], AliasTable] | None = None
    _voices: dict[str, tuple[JSON, JSON | None, ModelVoices]] = field(default_factory=dict)

    @property
    def synced(self) -> bool:
        return all(c.synced.is_set() for c in (self.deployments, self.voices, self.pods))

    def endpoints(self, deployment: str) -> list[Endpoint]:
        return endpoints_for(deployment, self.pods.objects, self.early)

    async def probe_starting(self, deployment: str) -> bool:
        """Ask the deployment's starting pods for ``/readyz`` and admit those that answer 200 (ADR 0038);
        whether any was admitted."""
        pods = self.early.to_probe(deployment, self.pods.objects)
        if not pods:
            return False
        limit = min(self.settings.pod_query_timeout, 0.5)  # a loading server may be slow to answer: ask again soon
        answers = await asyncio.gather(
            *(get_json(self.upstream, endpoint_of(p), "/readyz", limit, expect_failure=True) for p in pods)
        )
        ready = [answer is not None for answer in answers]  # /readyz answers 200 only once the model is warm
        for pod, is_ready in zip(pods, ready, strict=True):
            if is_ready:
                self.early.mark(pod)
                log.info(
                    "pod %s answers /readyz before Kubernetes marked it Ready: it takes %s's waiting requests now",
                    pod["metadata"]["name"],
                    deployment,
                )
        return any(ready)

    def deployment(self, name: str) -> JSON | None:
        return self.deployments.objects.get(name)

    def aliases(self) -> AliasTable:
        """Who answers to each model alias now (ADR 0042)."""
        objects = tuple(self.deployments.objects.values())
        known = self._aliases
        if known is not None and len(known[0]) == len(objects) and all(map(operator.is_, known[0], objects)):
            return known[1]
        table = model_table(self.deployments.objects, self.settings.default_model)
        self._aliases = (objects, table)
        return table

    def model_name(self, requested: str) -> str:
        """The TtsDeployment a request's ``model`` means: a real name, else an alias's owner."""
        return self.aliases().resolve(requested, self.deployments.objects)

    async def model_voices(self, name: str) -> ModelVoices | None:
        obj = self.deployment(name)
        if obj is None:
            return None
        builtin = await self.builtin_voices(name)
        known = self._voices.get(name)
        if known is not None and known[0] is obj and known[1] is builtin:
            return known[2]
        voices = model_voices(name, obj, builtin)
        self._voices[name] = (obj, builtin, voices)
        _forget_gone(self._voices, self.deployments.objects)
        return voices

    def spec(self, name: str) -> TtsDeploymentSpec | None:
        """The deployment's spec through the shared model; None when it does not exist (or does not parse)."""
        obj = self.deployment(name)
        if obj is None:
            return None
        known = self._specs.get(name)
        if known is not None and known[0] is obj:
            return known[1]
        spec = deployment_spec(obj)
        self._specs[name] = (obj, spec)
        _forget_gone(self._specs, self.deployments.objects)
        return spec

    def spec_replicas(self, name: str) -> int | None:
        spec = self.spec(name)
        return None if spec is None else spec.replicas

    def activation_timeout(self, name: str) -> float:
        spec = self.spec(name)
        return float(spec.activation_timeout_seconds if spec else ACTIVATION_TIMEOUT_DEFAULT)

    async def builtin_voices(self, name: str) -> JSON | None:
        """The model's own speakers (``{"default", "data": [...]}``) as its pods report them; None if unknown."""
        obj = self.deployment(name)
        if obj is None or capability_of(obj) != Capability.SPEECH:
            return None  # a transcription model has no speakers (ADR 0041)
        generation = int(obj["metadata"].get("generation", 0))
        found = self.speakers.known(name, generation)
        if found is None:
            found = await self.speakers.get(name, generation, self.endpoints(name))
        if found is None:
            # asleep and never seen awake by this router: the speakers the operator recorded, if any
            recorded = (obj.get("status") or {}).get("speakers")
            if isinstance(recorded, list) and recorded:
                return {"default": None, "data": [{"id": s, "name": s} for s in recorded if isinstance(s, str)]}
        return found


def _forget_gone(memo: dict[str, Any], objects: dict[str, JSON]) -> None:
    """Drop what a memo holds for deployments that are gone (once it holds more than there are)."""
    if len(memo) > len(objects):
        for name in [n for n in memo if n not in objects]:
            del memo[name]


def pod_session(settings: RouterSettings) -> aiohttp.ClientSession:
    """The client for inference pods; relaying speech is every request's hot path. aiohttp, because
    it costs a third of httpx's CPU per streamed request (ADR 0036). Bytes pass through undecoded;
    idle connections are dropped before the pods' servers drop them (uvicorn: after 5 s), so a
    request never goes out on a connection the pod is closing."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=settings.upstream_connect_timeout, sock_read=settings.upstream_read_timeout
        ),
        connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=4.0),
        auto_decompress=False,
        trust_env=False,
    )


async def _dispatch_on_pod_changes(state: RouterState) -> None:
    """A pod became ready (or went away): grant what waits in the hold queues."""
    while True:
        await state.pods.wait_changed(5.0)
        state.dispatcher.dispatch_all()


def watch_caches(api: client.ApiClient, namespace: str) -> tuple[Cache, Cache, Cache]:
    """List+watch caches of the namespace's TtsDeployments, TtsVoices and inference pods."""
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
    voices = Cache(
        "ttsvoices", objects.list_namespaced_custom_object, names.GROUP, names.VERSION, namespace, names.VOICE_PLURAL
    )
    selector = f"{names.LABEL_COMPONENT}={names.COMPONENT_INFERENCE},{names.LABEL_MANAGED_BY}={names.MANAGER}"
    pods = Cache("pods", core.list_namespaced_pod, namespace, label_selector=selector)
    return deployments, voices, pods


@contextlib.asynccontextmanager
async def router_state(settings: RouterSettings) -> AsyncIterator[RouterState]:
    api = await api_client()
    namespace = settings.resolved_namespace()
    deployments, voices, pods = watch_caches(api, namespace)
    upstream = pod_session(settings)
    kube = Kube(api, namespace)
    balancer = LeastOutstanding(settings.pod_concurrency)
    dispatcher = Dispatcher(balancer, lambda m: state.endpoints(m), settings.hold_queue_size)
    metrics = RouterMetrics(
        namespace, dispatcher, lambda: list(deployments.objects), lambda: (deployments, voices, pods)
    )

    # the closures read ``state`` once it exists (they run only after startup)
    activator = Activator(
        dispatcher,
        lambda m: state.endpoints(m),
        lambda m: state.spec_replicas(m),
        kube.wake,
        probe=lambda m: state.probe_starting(m),
        record=lambda m, result: metrics.wakes.labels(m, result).inc(),
    )
    keys = KeyRing(settings)
    if not len(keys) and not settings.auth_disabled:
        log.warning("no API keys configured and auth is not disabled: every request will get 401")
    state = RouterState(
        settings=settings,
        namespace=namespace,
        api=api,
        kube=kube,
        deployments=deployments,
        voices=voices,
        pods=pods,
        upstream=upstream,
        dispatcher=dispatcher,
        activator=activator,
        metrics=metrics,
        keys=keys,
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        speakers=Speakers(upstream, settings.pod_query_timeout),
    )
    state.tasks = [
        asyncio.create_task(deployments.run(), name="watch-ttsdeployments"),
        asyncio.create_task(voices.run(), name="watch-ttsvoices"),
        asyncio.create_task(pods.run(), name="watch-pods"),
        asyncio.create_task(_dispatch_on_pod_changes(state), name="dispatch"),
    ]
    log.info("router serving TtsDeployments in namespace %s", namespace)
    try:
        yield state
    finally:
        await activator.close()
        for t in state.tasks:
            t.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await upstream.close()
        await api.close()
