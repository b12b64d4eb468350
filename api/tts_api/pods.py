"""Small reads from inference pods: their built-in speakers and their ``/v1/status``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from .routing import Endpoint

log = logging.getLogger("tts_api.pods")
JSON = dict[str, Any]


async def get_json(
    http: aiohttp.ClientSession, endpoint: Endpoint, path: str, limit: float, expect_failure: bool = False
) -> JSON | None:
    """``GET path`` on the pod as JSON, or None if it does not answer 200 with an object within ``limit`` s.
    ``expect_failure``: the pod may well not be listening yet (a probe), so a failure is not logged."""
    try:
        async with http.get(f"{endpoint.url}{path}", timeout=aiohttp.ClientTimeout(total=limit)) as resp:
            if resp.status != 200:
                return None
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        if not expect_failure:
            log.info("pod %s did not answer %s: %s", endpoint.pod, path, exc.__class__.__name__)
        return None
    except ValueError:  # not JSON
        return None
    return body if isinstance(body, dict) else None


class Speakers:
    """Built-in speakers of each deployment, asked of one ready pod and remembered per generation
    (so they stay listed while the deployment sleeps at zero)."""

    def __init__(self, http: aiohttp.ClientSession, timeout: float) -> None:
        self.http = http
        self.timeout = timeout
        self._known: dict[str, tuple[int, JSON]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def known(self, model: str, generation: int) -> JSON | None:
        """The speakers learnt for this generation of the model, asking nobody; None if not learnt."""
        known = self._known.get(model)
        return known[1] if known and known[0] == generation else None

    async def get(self, model: str, generation: int, endpoints: list[Endpoint]) -> JSON | None:
        """``{"default": id, "data": [{id, name, language}]}``, or None if never learnt."""
        known = self._known.get(model)
        if known and known[0] == generation:
            return known[1]
        if not endpoints:
            return known[1] if known else None
        async with self._locks.setdefault(model, asyncio.Lock()):
            known = self._known.get(model)
            if known and known[0] == generation:
                return known[1]
            for endpoint in endpoints:
                body = await get_json(self.http, endpoint, "/v1/audio/voices", self.timeout)
                if body is not None and isinstance(body.get("data"), list):
                    self._known[model] = (generation, body)
                    return body
        return known[1] if known else None

    def forget(self, keep: set[str]) -> None:
        for model in set(self._known) - keep:
            self._known.pop(model, None)
