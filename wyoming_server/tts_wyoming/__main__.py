"""``kube-tts-wyoming``: a Wyoming TTS server (Home Assistant) in front of the kube-tts router."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from functools import partial

from pydantic import ValidationError
from wyoming.server import AsyncServer

from .handler import SpeechHandler
from .service import Service, http_client
from .settings import WyomingSettings

log = logging.getLogger("tts_wyoming")


def parse(argv: list[str] | None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        prog="kube-tts-wyoming",
        description="Wyoming TTS server for kube-tts (Home Assistant). Configured by KUBETTS_URL, KUBETTS_API_KEY "
        "and KUBETTS_WYOMING_* (see README.md, 'Home Assistant').",
    )
    parser.add_argument(
        "--uri", help="where to listen, tcp://host:port (KUBETTS_WYOMING_URI, default tcp://127.0.0.1:10200)"
    )
    parser.add_argument("--default-model", help="the model that speaks when no voice is named")
    parser.add_argument("--zeroconf", action="store_true", default=None, help="advertise the server over mDNS")
    parser.add_argument("--zeroconf-name", help="the mDNS service name (default kube-tts)")
    args = parser.parse_args(argv)
    return {k: v for k, v in vars(args).items() if v is not None}


async def serve(settings: WyomingSettings) -> None:
    async with http_client(settings) as http:
        service = Service(settings, http)
        server = AsyncServer.from_uri(settings.uri)
        if settings.zeroconf:
            await advertise(settings)
        log.info("Wyoming server on %s, speaking through the router at %s", settings.uri, settings.url)
        await server.run(partial(SpeechHandler, service=service))


async def advertise(settings: WyomingSettings) -> None:
    from wyoming.zeroconf import HomeAssistantZeroconf

    port = settings.tcp_port()
    if port is None:
        raise SystemExit("kube-tts-wyoming: --zeroconf needs a tcp:// URI")
    zeroconf = HomeAssistantZeroconf(port=port, name=settings.zeroconf_name, host=settings.zeroconf_host or None)
    await zeroconf.register_server()
    log.info("advertised as %s._wyoming._tcp.local. on %s:%d", settings.zeroconf_name, zeroconf.host, port)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = WyomingSettings(**parse(argv))  # type: ignore[arg-type]
    except ValidationError as exc:
        print(f"kube-tts-wyoming: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.api_key.get_secret_value():
        log.warning("KUBETTS_API_KEY is empty: the router will refuse every request (401)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
