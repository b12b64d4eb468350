"""``python -m tts_devcluster.portmap --listen 127.0.0.1:8080 --to 10.96.0.80:8080``: a host port mapped
to a Service, as kind's ``extraPortMappings`` map a host port into the cluster.

The router runs as a pod; its Service's ClusterIP is reachable from this host through the node
agent's service NAT, but a browser needs a loopback origin (a secure context: the web UI's
microphone recording), and a fixed ``KUBETTS_URL`` beats one that changes with every install. Each
accepted connection is relayed byte for byte; nothing is parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

log = logging.getLogger("portmap")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def relay(target: tuple[str, int], client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*target), 5)
    except (OSError, TimeoutError) as exc:
        log.warning("cannot reach %s:%d: %s", *target, exc)
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    finally:
        for w in (up_w, client_w):
            with contextlib.suppress(OSError):
                w.close()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    server = await asyncio.start_server(lambda r, w: relay(target, r, w), *listen, reuse_address=True)
    log.info("relaying %s:%d to %s:%d", *listen, *target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="host:port on this machine")
    parser.add_argument("--to", required=True, help="host:port to relay to (a Service's ClusterIP)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(_addr(args.listen), _addr(args.to)))


if __name__ == "__main__":
    main()
