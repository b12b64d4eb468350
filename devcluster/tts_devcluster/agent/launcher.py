"""Turns the current process into a pod's container, then execs the container's command.

Run as root by the node agent: ``python -m tts_devcluster.agent.launcher SPEC.json``. It joins
the pod's network namespace, takes a private mount and UTS namespace, mounts the pod's volumes
at their mount paths, makes the root filesystem read-only when the container asks for it,
sets no_new_privs, drops to the container's user and groups and finally ``execve``s the
command, so the pid the agent holds *is* the container process.

Only the standard library is imported: this runs once per container start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import socket
import stat
import sys
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS = 38


class LaunchError(RuntimeError):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise LaunchError(f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} -> {target}",
    )


def bind(source: str, target: str, read_only: bool) -> None:
    src = Path(source)
    tgt = Path(target)
    if src.is_dir():
        tgt.mkdir(parents=True, exist_ok=True)
    else:
        tgt.parent.mkdir(parents=True, exist_ok=True)
        if not tgt.exists():
            tgt.touch()
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _world_traversable(path: Path) -> bool:
    mode = path.stat().st_mode
    return bool(mode & stat.S_IXOTH)


def expose(paths: list[str], staging: str) -> None:
    """Make ``paths`` reachable for a non-root user when an ancestor is private (e.g. /root).

    A container image keeps its runtime world-readable; this host keeps Python under /root
    (mode 0700). In the pod's own mount namespace the first private ancestor is covered by a
    tmpfs (mode 0755) into which only the needed paths are bind-mounted back. The host's
    directory is not changed and nothing else under it becomes visible.
    """
    blockers: dict[str, list[str]] = {}
    for raw in paths:
        p = Path(raw).resolve()
        for ancestor in reversed(p.parents):
            if ancestor != Path("/") and not _world_traversable(ancestor):
                blockers.setdefault(str(ancestor), []).append(str(p))
                break
    for blocker, needed in blockers.items():
        staged = []
        for i, path in enumerate(sorted(set(needed))):
            hold = os.path.join(staging, f"expose-{abs(hash(blocker))}-{i}")
            os.makedirs(hold, exist_ok=True)
            mount(path, hold, None, MS_BIND | MS_REC)
            staged.append((hold, path))
        mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for hold, path in staged:
            os.makedirs(path, exist_ok=True)
            mount(hold, path, None, MS_MOVE)


def enter_namespaces(spec: dict) -> None:
    netns = spec.get("netns")
    if netns:
        fd = os.open(netns, os.O_RDONLY)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), f"setns {netns}")
        finally:
            os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    # nothing mounted here may leak back to the host
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])


def setup_filesystem(spec: dict) -> None:
    if spec.get("uid") not in (None, 0) and spec.get("expose"):
        expose(spec["expose"], spec["staging"])
    for m in spec.get("mounts", []):
        bind(m["source"], m["target"], m.get("readOnly", False))
    for etc in ("hosts", "resolv.conf", "hostname"):
        src = spec.get("etc", {}).get(etc)
        if src:
            bind(src, f"/etc/{etc}", read_only=False)
    if spec.get("readOnlyRoot"):
        mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def drop_privileges(spec: dict) -> None:
    if spec.get("noNewPrivs"):
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    uid, gid = spec.get("uid"), spec.get("gid")
    if uid is None:
        return
    os.setgroups([int(g) for g in spec.get("groups", [])])
    os.setgid(int(gid) if gid is not None else 0)
    os.setuid(int(uid))


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[1]).read_text())
    try:
        enter_namespaces(spec)
        setup_filesystem(spec)
        drop_privileges(spec)
        cwd = spec.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise LaunchError(f"workingDir {cwd}: {exc.strerror}") from exc
        env = spec["env"]
        os.execvpe(spec["argv"][0], spec["argv"], env)
    except (LaunchError, OSError) as exc:
        # the agent reads this line from the container log and reports it as the reason
        print(f"kube-tts-launcher: cannot start container: {exc}", file=sys.stderr, flush=True)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv)
