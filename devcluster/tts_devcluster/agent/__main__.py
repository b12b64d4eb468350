"""``python -m tts_devcluster.agent``: run the node agent (started by ``make up``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
from pathlib import Path

from ..kube import KubeClient
from ..layout import AGENT_HEALTH_PORT, cache_root, repo_root
from .agent import NodeAgent, RuntimeSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True, help="pod sandboxes and container logs")
    parser.add_argument("--pki-dir", type=Path, required=True, help="CA and the kubelet-API serving certificate")
    parser.add_argument("--path", action="append", default=[], help="directories put first on pods' PATH")
    parser.add_argument("--health-port", type=int, default=AGENT_HEALTH_PORT)
    parser.add_argument(
        "--images-dir", type=Path, default=cache_root() / "images", help="unpacked images, one rootfs per digest"
    )
    parser.add_argument("--runc", default=shutil.which("runc") or "runc", help="the OCI runtime")
    parser.add_argument(
        "--process-images",
        default=os.environ.get("KUBETTS_AGENT_PROCESS_IMAGES", ""),
        help="comma-separated image patterns run as processes from the checkout instead (opt-in; ADR 0040)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # what a non-root container must be able to reach: the interpreter and the project itself
    expose = sorted({os.path.realpath(sys.base_prefix), str(repo_root())})

    async def run() -> None:
        client = await KubeClient.from_kubeconfig(args.kubeconfig)
        runtime = RuntimeSettings(
            images_dir=args.images_dir,
            runc=args.runc,
            process_images=tuple(p.strip() for p in args.process_images.split(",") if p.strip()),
        )
        agent = NodeAgent(client, args.state_dir, args.pki_dir, args.path, expose, runtime)
        await agent.run(args.health_port)

    asyncio.run(run())


if __name__ == "__main__":
    main()
