"""``python -m tts_operator``: run the operator (standalone, one replica, for now)."""

from __future__ import annotations

import asyncio
import logging

import kopf

from . import handlers  # noqa: F401  (registers the handlers)
from .settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    namespaces = settings.namespaces
    asyncio.run(kopf.operator(standalone=True, clusterwide=not namespaces, namespaces=namespaces))


if __name__ == "__main__":
    main()
