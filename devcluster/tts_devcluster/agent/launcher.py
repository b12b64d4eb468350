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


class Source:
    """A path opened (O_PATH) before anything is mounted, so a later mount cannot hide it.

    Example: an emptyDir mounted at /tmp would otherwise hide every source under /tmp,
    including this pod's own sandbox when the checkout lives there.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.is_dir = os.path.isdir(path)
        self.fd = os.open(path, os.O_PATH | os.O_CLOEXEC)

    @property
    def handle(self) -> str:
        return f"/proc/self/fd/{self.fd}"


def bind(source: Source, target: str, read_only: bool) -> None:
    tgt = Path(target)
    if source.is_dir:
        tgt.mkdir(parents=True, exist_ok=True)
    else:
        tgt.parent.mkdir(parents=True, exist_ok=True)
        if not tgt.exists():
            tgt.touch()
    mount(source.handle, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _world_traversable(path: Path) -> bool:
    mode = path.stat().st_mode
    return bool(mode & stat.S_IXOTH)


def cover_private_ancestors(image: list[Source]) -> None:
    """Cover each private ancestor of an image path (e.g. /root, mode 0700) with a tmpfs.

    A container image keeps its runtime world-readable; this host may keep Python under /root.
    In the pod's own mount namespace the first private ancestor is covered by an empty tmpfs
    (mode 0755); ``restore_image`` then binds only the needed paths back. The host's directory is
    not changed and nothing else under it becomes visible to the pod.
    """
    blockers = set()
    for src in image:
        for ancestor in reversed(Path(src.path).parents):
            if ancestor != Path("/") and not _world_traversable(ancestor):
                blockers.add(str(ancestor))
                break
    for blocker in sorted(blockers):
        mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")


def restore_image(image: list[Source]) -> None:
    """Bind back every image path that a tmpfs or a volume now hides.

    The "image" here is the host's filesystem: when a pod mounts an emptyDir at /tmp and the
    checkout lives under /tmp, the program must still be found where it was.
    """
    for src in image:
        want = os.fstat(src.fd)
        try:
            have = os.stat(src.path)
            if (have.st_dev, have.st_ino) == (want.st_dev, want.st_ino):
                continue
        except OSError:
            pass
        os.makedirs(src.path, exist_ok=True)
        # not MS_REC: a recursive bind would carry along the very mount that hides the path
        mount(src.handle, src.path, None, MS_BIND)


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
    # Open every source first: a volume mounted at /tmp must not hide a source under /tmp.
    image = [Source(str(Path(p).resolve())) for p in spec.get("expose", [])]
    mounts = [(Source(m["source"]), m["target"], m.get("readOnly", False)) for m in spec.get("mounts", [])]
    etc = [(Source(src), f"/etc/{name}") for name, src in spec.get("etc", {}).items() if src]
    if spec.get("uid") not in (None, 0):
        cover_private_ancestors(image)
    for source, target in etc:
        bind(source, target, read_only=False)
    for source, target, read_only in mounts:
        bind(source, target, read_only)
    restore_image(image)
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
