"""``python -m tts_inference``: serve one engine on KUBETTS_HOST:KUBETTS_PORT."""

from __future__ import annotations

import logging
import sys

import uvicorn

from .app import create_app
from .settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False)
    )
    app.state.stop_server = lambda: setattr(server, "should_exit", True)
    server.run()
    host = getattr(app.state, "host", None)
    if settings.exit_on_load_failure and host is not None and host.error:
        sys.exit(3)


if __name__ == "__main__":
    main()
