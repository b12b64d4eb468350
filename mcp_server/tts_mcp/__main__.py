"""``kube-tts-mcp``: the MCP server over stdio (default) or streamable HTTP (``--transport http``)."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from .settings import McpSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kube-tts-mcp",
        description="MCP server for kube-tts. Configured by KUBETTS_URL, KUBETTS_API_KEY, KUBETTS_ADMIN_API_KEY "
        "and KUBETTS_MCP_* (see mcp_server/README.md).",
    )
    parser.add_argument("--transport", choices=["stdio", "http"], help="default: KUBETTS_MCP_TRANSPORT or stdio")
    parser.add_argument("--host", help="HTTP: address to bind (KUBETTS_MCP_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP: port (KUBETTS_MCP_PORT, default 8090)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = McpSettings(**overrides)
    except ValidationError as exc:
        # stdout belongs to the protocol on stdio: every word for humans goes to stderr
        print(f"kube-tts-mcp: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from .server import create_server

    server = create_server(settings)
    if settings.transport == "stdio":
        server.run("stdio")
        return 0

    import uvicorn

    from .http import create_http_app

    uvicorn.run(
        create_http_app(settings, server),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # the key is in the Authorization header, never in the URL: access logs stay key-free
        access_log=settings.log_level.lower() in ("debug", "info"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
