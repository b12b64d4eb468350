"""The streamable HTTP transport (in-cluster, port 8090): the SDK's app behind a bearer-key gate.

Every request to ``/mcp`` must carry ``Authorization: Bearer <key>``; the key is the caller's router
API key and each tool call forwards it to the router, which decides what it may do (the server
holds no key of its own in this mode). The SDK's transport security checks the Host header (and a
browser's Origin) against the configured allowlist, against DNS rebinding.
"""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from .server import create_server
from .service import KubeTtsService, bearer_token
from .settings import McpSettings

MCP_PATH = "/mcp"
OPEN_PATHS = frozenset({"/healthz"})


class RequireBearer:
    """Answer 401 to any HTTP request without a bearer key, except the health check."""

    def __init__(self, app: ASGIApp, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.open_paths:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if bearer_token(headers) is None:
                body = json.dumps(
                    {
                        "error": {
                            "message": "missing API key: send 'Authorization: Bearer <router API key>'",
                            "type": "authentication_error",
                            "code": "missing_api_key",
                        }
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="kube-tts"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def transport_security(settings: McpSettings) -> TransportSecuritySettings:
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.host_allowlist(),
        allowed_origins=settings.origin_allowlist(),
    )


def create_http_app(settings: McpSettings, server: MCPServer[KubeTtsService] | None = None) -> ASGIApp:
    """The ASGI app serving ``/mcp`` (streamable HTTP, stateless: any replica answers any request)."""
    server = server or create_server(settings)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=transport_security(settings),
        host=settings.host,
    )
    return RequireBearer(app)
