"""What the router's own clients (the MCP and Wyoming servers) share: the router URL they accept and
how they read its OpenAI-shaped error answers. Standard library only: those images carry no web
framework."""

from __future__ import annotations

import json


def router_url(value: str) -> str:
    """``KUBETTS_URL`` checked (http or https) and without a trailing slash."""
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"KUBETTS_URL must start with http:// or https:// (got {value!r})")
    return value.rstrip("/")


def read_error(status: int, body: bytes) -> tuple[str, str | None]:
    """The message and code of an error answer ``{"error": {"message", "code"}}``; for anything else
    a proxy may send, a message quoting its start, and no code."""
    message, code = "", None
    try:
        err = json.loads(body).get("error") or {}
        message, code = str(err.get("message") or ""), err.get("code")
    except (ValueError, AttributeError):
        pass
    if not message:
        snippet = body[:200].decode("utf-8", "replace").strip()
        message = f"the router answered HTTP {status}" + (f": {snippet}" if snippet else "")
    return message, code
