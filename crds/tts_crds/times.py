"""RFC 3339 timestamps as Kubernetes writes them (UTC, whole seconds, ``Z``), one copy for every component."""

from __future__ import annotations

import datetime as dt


def iso(ts: float) -> str:
    """A Unix time as ``2026-01-02T03:04:05Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(dt.datetime.now(dt.UTC).timestamp())


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp as Unix time; None for none. Raises ValueError for one that does not parse."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
