"""The router's Prometheus metrics, in its own registry (no globals).

Activity gauges the operator scales by — per TtsDeployment, labels ``namespace`` and ``deployment``:

- ``kubetts_router_inflight_requests``: requests holding a pod slot (being served);
- ``kubetts_router_queued_requests``: requests held waiting for a ready pod or a free slot;
- ``kubetts_router_last_request_timestamp_seconds``: unix time the last request finished (only
  for deployments that had a request since this router started).

They are computed at scrape time from the hold queue, so deleted deployments disappear. Request
metrics carry ``deployment`` (an existing TtsDeployment, or "" for unknown models) and ``code``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .dispatch import Dispatcher
from .kube import Cache

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class _Activity(Collector):
    def __init__(self, namespace: str, dispatcher: Dispatcher, deployments: Callable[[], Iterable[str]]) -> None:
        self.namespace = namespace
        self.dispatcher = dispatcher
        self.deployments = deployments

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["namespace", "deployment"]
        inflight = GaugeMetricFamily(
            "kubetts_router_inflight_requests", "Speech requests being served by an inference pod", labels=labels
        )
        queued = GaugeMetricFamily(
            "kubetts_router_queued_requests",
            "Speech requests held waiting for a ready pod or a free pod slot",
            labels=labels,
        )
        last = GaugeMetricFamily(
            "kubetts_router_last_request_timestamp_seconds",
            "Unix time the last speech request for the deployment finished",
            labels=labels,
        )
        d = self.dispatcher
        for name in sorted({*self.deployments(), *d.models()}):
            inflight.add_metric([self.namespace, name], d.inflight(name))
            queued.add_metric([self.namespace, name], d.queued(name))
            if name in d.last_finished:
                last.add_metric([self.namespace, name], d.last_finished[name])
        yield inflight
        yield queued
        yield last


class _Watches(Collector):
    """How often each watch cache listed (1 at start; more after expired watches or apiserver restarts)."""

    def __init__(self, caches: Callable[[], Iterable[Cache]]) -> None:
        self.caches = caches

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        relists = CounterMetricFamily(
            "kubetts_router_watch_lists", "Full lists made by each watch cache", labels=["kind"]
        )
        synced = GaugeMetricFamily("kubetts_router_watch_synced", "1 once the cache has listed", labels=["kind"])
        for cache in self.caches():
            relists.add_metric([cache.kind], cache.relists)
            synced.add_metric([cache.kind], 1 if cache.synced.is_set() else 0)
        yield relists
        yield synced


class RouterMetrics:
    def __init__(
        self,
        namespace: str,
        dispatcher: Dispatcher,
        deployments: Callable[[], Iterable[str]],
        caches: Callable[[], Iterable[Cache]] = tuple,
    ) -> None:
        self.registry = r = CollectorRegistry()
        r.register(_Activity(namespace, dispatcher, deployments))
        r.register(_Watches(caches))
        self.requests = Counter(
            "kubetts_router_requests", "Speech requests by final status code", ["deployment", "code"], registry=r
        )
        self.duration = Histogram(
            "kubetts_router_request_duration_seconds",
            "Speech requests from arrival until the last byte (or failure)",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_byte = Histogram(
            "kubetts_router_time_to_first_byte_seconds",
            "Speech requests from arrival until the first audio byte left the router",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "kubetts_router_queue_wait_seconds",
            "Time requests spent in the hold queue before a pod slot was granted",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.wakes = Counter(
            "kubetts_router_scale_from_zero",
            "Scale-from-zero attempts (patches of the scale subresource 0 -> 1) by result",
            ["deployment", "result"],
            registry=r,
        )
        self.retries = Counter(
            "kubetts_router_upstream_retries",
            "Requests sent to another pod because the first refused the connection",
            ["deployment"],
            registry=r,
        )
        self.rejected = Counter(
            "kubetts_router_rejected_requests",
            "Requests refused before routing, by reason (auth, rate_limit, queue_full, too_large)",
            ["reason"],
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
