"""API keys with scopes and a per-key token bucket (pure logic, plus re-reading the key files).

Keys are compared in constant time against every configured key and never logged; a key is
known to the rate limiter only by a short hash of it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .settings import RouterSettings


@dataclass(frozen=True)
class Principal:
    id: str  # a hash of the key (or "anonymous:<ip>" without auth): safe to log, the rate-limit key
    admin: bool


def key_id(token: str) -> str:
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _known(key: str, admin: bool) -> tuple[bytes, Principal]:
    """A configured key as the ring holds it: its digest, and who presents it."""
    return hashlib.sha256(key.encode()).digest(), Principal(key_id(key), admin)


class KeyRing:
    """User and admin keys from the settings; key files are re-read when they change (Secret rotation)."""

    def __init__(self, settings: RouterSettings, recheck_seconds: float = 5.0) -> None:
        self.settings = settings
        self.recheck_seconds = recheck_seconds
        self._checked = 0.0
        self._stamp: tuple[float, ...] = ()
        self._digests: list[tuple[bytes, Principal]] = []
        self._load()

    def _files(self) -> list[Path]:
        return [p for p in (self.settings.api_keys_file, self.settings.admin_api_keys_file) if p is not None]

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime if p.exists() else -1.0 for p in self._files())

    def _load(self) -> None:
        admin = self.settings.admin_keys()
        user = self.settings.keys() - admin
        self._digests = [_known(k, False) for k in sorted(user)] + [_known(k, True) for k in sorted(admin)]
        self._stamp = self._mtimes()

    def __len__(self) -> int:
        return len(self._digests)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.recheck_seconds:
            return
        self._checked = now
        if self._mtimes() != self._stamp:
            self._load()

    def authenticate(self, token: str) -> Principal | None:
        self._maybe_reload()
        digest = hashlib.sha256(token.encode()).digest()
        found: Principal | None = None
        for known, principal in self._digests:  # no early exit: the time does not depend on which key matched
            if hmac.compare_digest(digest, known) and (found is None or principal.admin):
                found = principal
        return found


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one will be there."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per principal, the least recently used forgotten beyond ``max_keys``."""

    def __init__(
        self, rate: float, burst: int, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, who: str) -> int:
        """0 if allowed, else whole seconds to wait (for Retry-After)."""
        if self.rate <= 0:
            return 0
        now = self.clock()
        bucket = self._buckets.get(who)
        if bucket is None:
            bucket = self._buckets[who] = TokenBucket(self.rate, self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(who)
        wait = bucket.take(now)
        return math.ceil(wait) if wait > 0 else 0
