"""``kube-tts-dev``: the local cluster and the kube-tts platform on it.

kube-tts-dev cluster-up       image registry, control plane, nodes, node agent
kube-tts-dev registry-up      only the local image registry (make images starts it)
kube-tts-dev platform-up      CRDs, operator, router, sample TtsDeployment; waits until it speaks
kube-tts-dev down [--wipe]    stop everything (--wipe also deletes .devcluster/)
kube-tts-dev restart NAME     stop and start one component (kube-apiserver, router, operator, …)
kube-tts-dev status           which components run
kube-tts-dev logs NAME        a component's log (etcd, kube-apiserver, operator, router, …)
"""

from __future__ import annotations

import argparse
import sys

from . import platform, procs
from .controlplane import COMPONENTS, ClusterError, ControlPlane, say
from .layout import Layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kube-tts-dev", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cluster-up", help="start the local control plane, nodes and node agent")
    sub.add_parser("registry-up", help="start only the local image registry (127.0.0.1:5100+instance)")
    pu = sub.add_parser("platform-up", help="install CRDs, start operator and router, deploy the sample")
    pu.add_argument("--no-sample", action="store_true", help="do not create the sample TtsDeployment")
    down = sub.add_parser("down", help="stop everything")
    down.add_argument("--wipe", action="store_true", help="also delete .devcluster/ (etcd data, certificates)")
    rs = sub.add_parser("restart", help="stop and start one component (to test recovery, or pick up code)")
    rs.add_argument("name")
    sub.add_parser("status", help="show which components run")
    lg = sub.add_parser("logs", help="print a component's log")
    lg.add_argument("name")
    lg.add_argument("-n", "--lines", type=int, default=100)
    args = parser.parse_args(argv)

    layout = Layout.default()
    cp = ControlPlane(layout)
    try:
        if args.cmd == "cluster-up":
            cp.up()
        elif args.cmd == "registry-up":
            cp.up_registry()
        elif args.cmd == "platform-up":
            platform.up(layout, sample=not args.no_sample)
        elif args.cmd == "down":
            platform.down(layout)
            cp.down(wipe=args.wipe)
        elif args.cmd == "restart":
            if args.name in platform.COMPONENTS:
                procs.stop(layout, args.name)
                platform.start_components(layout)
            elif args.name in COMPONENTS:
                cp.restart(args.name)
            else:
                choices = ", ".join(sorted({*COMPONENTS, *platform.COMPONENTS}))
                print(f"unknown component {args.name!r}; one of: {choices}", file=sys.stderr)
                return 2
            say(f"restarted {args.name}")
        elif args.cmd == "status":
            for name, running in {**cp.status(), **platform.status(layout)}.items():
                print(f"{name:26} {'running' if running else 'stopped'}")
        elif args.cmd == "logs":
            known = set(COMPONENTS) | set(platform.COMPONENTS)
            if args.name not in known:
                print(f"unknown component {args.name!r}; one of: {', '.join(sorted(known))}", file=sys.stderr)
                return 2
            print(procs.tail(procs.log_path(layout, args.name), args.lines))
    except ClusterError as exc:
        say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
