"""A router's state without a cluster, for component tests: its watch caches filled by the test as
the watches would fill them, everything else (dispatcher, activator, metrics, keys, rate limit,
speakers) what the router's lifespan builds from ``settings``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tts_api.activation import Activator
from tts_api.dispatch import Dispatcher
from tts_api.kube import Cache
from tts_api.metrics import RouterMetrics
from tts_api.pods import Speakers
from tts_api.routing import EarlyReady, LeastOutstanding, endpoints_for
from tts_api.security import KeyRing, RateLimiter
from tts_api.settings import RouterSettings
from tts_api.state import RouterState, pod_session


async def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("no cluster here: the caches are filled by the test")


def offline_state(
    settings: RouterSettings, deployments: dict[str, dict[str, Any]], pods: dict[str, dict[str, Any]]
) -> RouterState:
    """``deployments`` and ``pods``: the objects by name, as the TtsDeployment and pod watches hold them."""
    deployment_cache, voices, pod_cache = (
        Cache("ttsdeployments", _never),
        Cache("ttsvoices", _never),
        Cache("pods", _never),
    )
    deployment_cache.objects = deployments
    pod_cache.objects = pods
    upstream = pod_session(settings)
    early = EarlyReady()

    def endpoints(model: str) -> list:
        return endpoints_for(model, pod_cache.objects, early)

    dispatcher = Dispatcher(LeastOutstanding(settings.pod_concurrency), endpoints, settings.hold_queue_size)
    return RouterState(
        settings=settings,
        namespace=settings.namespace,
        api=None,  # type: ignore[arg-type]
        kube=SimpleNamespace(),  # type: ignore[arg-type]
        deployments=deployment_cache,
        voices=voices,
        pods=pod_cache,
        upstream=upstream,
        dispatcher=dispatcher,
        activator=Activator(dispatcher, endpoints, lambda m: 1, _never),  # type: ignore[arg-type]
        metrics=RouterMetrics(settings.namespace, dispatcher, lambda: list(deployment_cache.objects)),
        keys=KeyRing(settings),
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        speakers=Speakers(upstream, settings.pod_query_timeout),
        early=early,
    )
