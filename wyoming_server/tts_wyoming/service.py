"""What every connection shares: the settings, one HTTP client to the router, and the catalogue.

The catalogue (models and voices) is read from the router on each ``describe`` and reused for
``catalog_ttl`` seconds to resolve voice names, so a ``synthesize`` that names ``<model>/<voice>``
costs no extra round trip at all and one that names a bare voice at most one in ``catalog_ttl``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from wyoming.info import Info
from wyoming.tts import SynthesizeVoice

from . import __version__
from .catalog import SEPARATOR, Catalog, UnknownVoice
from .router import Router
from .settings import WyomingSettings


class Service:
    def __init__(
        self, settings: WyomingSettings, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.router = Router(http, settings.url, settings.api_key.get_secret_value())
        self._clock = clock
        self._catalog: Catalog | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def catalog(self, fresh: bool = False) -> Catalog:
        async with self._lock:
            stale = self._catalog is None or self._clock() - self._read_at > self.settings.catalog_ttl
            if fresh or stale:
                models, voices = await asyncio.gather(self.router.models(), self.router.voices())
                self._catalog = Catalog.build(models, voices, self.settings.default_model)
                self._read_at = self._clock()
            assert self._catalog is not None
            return self._catalog

    async def info(self) -> Info:
        catalog = await self.catalog(fresh=True)
        return catalog.info(__version__, f"kube-tts, the text-to-speech platform on Kubernetes ({self.settings.url})")

    async def resolve(self, voice: SynthesizeVoice | None) -> tuple[str, str]:
        """(model, voice) for the router; ``<model>/<voice>`` without reading the catalogue."""
        if voice is not None and voice.name and SEPARATOR in voice.name:
            return Catalog().resolve(voice)  # the router checks both names
        try:
            return (await self.catalog()).resolve(voice)
        except UnknownVoice:
            # a model or voice created since the catalogue was read: read it once more
            return (await self.catalog(fresh=True)).resolve(voice)


def http_client(settings: WyomingSettings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=60)
    return httpx.AsyncClient(timeout=timeout, limits=limits)
