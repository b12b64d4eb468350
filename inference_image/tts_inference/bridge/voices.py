"""The voice lists speech servers answer, in the one shape kube-tts uses (pure; unit-tested).

Servers answer a list of strings (``["af_bella", …]``), a list of objects (``[{"id": …}]``, with
``id``, ``voice_id``, ``key`` or ``name``), or an object holding either under ``voices`` or ``data``
(Kokoro-FastAPI, Speaches, Open WebUI's shape).
"""

from __future__ import annotations

from typing import Any

_ID_KEYS = ("id", "voice_id", "key", "name", "voice")


def _entry(item: Any) -> dict[str, str] | None:
    if isinstance(item, str):
        return {"id": item, "name": item} if item else None
    if not isinstance(item, dict):
        return None
    ident = next((item[k] for k in _ID_KEYS if isinstance(item.get(k), str) and item[k]), None)
    if ident is None:
        return None
    out = {"id": ident, "name": str(item.get("name") or ident)}
    language = item.get("language") or item.get("lang") or item.get("language_code")
    if isinstance(language, str) and language:
        out["language"] = language
    return out


def normalise(body: Any) -> list[dict[str, str]] | None:
    """``[{id, name[, language]}]`` from a server's voices answer; None when the shape is unknown."""
    if isinstance(body, dict):
        body = next((body[k] for k in ("voices", "data") if isinstance(body.get(k), list)), None)
    if not isinstance(body, list):
        return None
    entries = [e for e in (_entry(item) for item in body) if e is not None]
    seen: set[str] = set()
    return [e for e in entries if not (e["id"] in seen or seen.add(e["id"]))]  # type: ignore[func-returns-value]


def listing(voices: list[dict[str, str]], default: str) -> dict[str, Any]:
    """The bridge's ``GET /v1/audio/voices``: what the router reads of every inference pod."""
    return {
        "object": "list",
        "default": default or (voices[0]["id"] if voices else None),
        "can_clone": False,
        "data": voices,
    }
