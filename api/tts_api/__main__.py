"""``python -m tts_api``: serve the router on KUBETTS_HOST:KUBETTS_PORT."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .settings import RouterSettings


def main() -> None:
    settings = RouterSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
