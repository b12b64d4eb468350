"""``python -m tts_inference.bridge``: serve the bridge on KUBETTS_HOST:KUBETTS_PORT."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .settings import BridgeSettings


def main() -> None:
    settings = BridgeSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request to the server otherwise
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
