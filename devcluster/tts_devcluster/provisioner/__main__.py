"""``python -m tts_devcluster.provisioner``: run the local volume provisioner (started by ``make up``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from ..kube import KubeClient
from .controller import Provisioner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="one directory per volume is made under it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        async with await KubeClient.from_kubeconfig(args.kubeconfig) as client:
            client.api.user_agent = "kube-tts-volume-provisioner/0.1"
            await Provisioner(client, args.root.resolve()).run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
