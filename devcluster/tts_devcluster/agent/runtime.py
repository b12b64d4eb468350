"""Containers from images with an OCI runtime (runc): the bundle a kubelet's CRI runtime would build.

``container_process`` and ``oci_config`` are pure (unit-tested): from the pod's container spec,
its identity and the image's config they decide argv, env, user and working directory exactly as
Kubernetes documents it (``command`` replaces the image's ENTRYPOINT, ``args`` its CMD), and they
write the runtime spec: the pod's network namespace, new mount/pid/ipc/uts namespaces, the pod's
volumes and /etc files as bind mounts, a read-only root where asked, the capability set after the
container's ``add``/``drop``, ``no_new_privs``, the RuntimeDefault seccomp filter, and the memory
limit. ``Runc`` and ``Rootfs`` do the I/O: one overlay per container run over the shared unpacked
image (a fresh writable layer, as a new container gets), and ``runc run`` in the foreground so the
process the agent waits on ends when the container does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .images import ImageConfig
from .podspec import DEFAULT_PATH, parse_quantity

JSON = dict[str, Any]

# containerd's default capability set (what a container has unless its securityContext drops it)
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# The syscalls the Docker/containerd default seccomp profile refuses (ADR 0040: this filter is
# that profile written as a deny list: allow by default, EPERM for these).
SECCOMP_DENIED = (
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
)

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


class RuntimeConfigError(RuntimeError):
    """The container cannot be run as specified (the kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class Process:
    argv: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    groups: list[int]


def container_argv(container: JSON, image: ImageConfig) -> list[str]:
    """Kubernetes' rule: ``command`` replaces ENTRYPOINT (and drops CMD), ``args`` replace CMD."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if command:
        argv = command + args
    elif args:
        argv = list(image.entrypoint) + args
    else:
        argv = list(image.entrypoint) + list(image.cmd)
    if not argv:
        raise RuntimeConfigError("no command specified: the container names none and its image has no ENTRYPOINT/CMD")
    return argv


def merge_env(image_env: tuple[str, ...], pod_env: dict[str, str]) -> dict[str, str]:
    """The image's ENV first, the pod's variables over it (as a CRI runtime merges them)."""
    env: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        env[key] = value
    env.update(pod_env)
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def _passwd(rootfs: Path, name: str) -> tuple[int, int, str] | None:
    with contextlib.suppress(OSError):
        for line in (rootfs / "etc" / "passwd").read_text().splitlines():
            parts = line.split(":")
            if len(parts) >= 6 and (parts[0] == name or parts[2] == name):
                return int(parts[2]), int(parts[3]), parts[5]
    return None


def _group(rootfs: Path, name: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in (rootfs / "etc" / "group").read_text().splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[0] == name:
                return int(parts[2])
    return None


def resolve_user(
    run_as_user: int | None,
    run_as_group: int | None,
    image_user: str,
    rootfs: Path,
    run_as_non_root: bool,
) -> tuple[int, int, str]:
    """(uid, gid, home): the securityContext over the image's USER, names looked up in its /etc."""
    user, _, group = image_user.partition(":")
    home = "/"
    if run_as_user is not None:
        uid = int(run_as_user)
        found = _passwd(rootfs, str(uid))
        gid = found[1] if found else 0
        home = found[2] if found else "/"
    elif user:
        if user.isdigit():
            uid = int(user)
            found = _passwd(rootfs, user)
        else:
            if run_as_non_root:
                raise RuntimeConfigError(f"image has non-numeric user ({user}), cannot verify user is non-root")
            found = _passwd(rootfs, user)
            if found is None:
                raise RuntimeConfigError(f"image user {user!r} is not in the image's /etc/passwd")
            uid = found[0]
        gid = found[1] if found else 0
        home = found[2] if found else "/"
    else:
        uid, gid, home = 0, 0, "/root"
    if group and run_as_group is None:
        gid = int(group) if group.isdigit() else (_group(rootfs, group) or 0)
    if run_as_group is not None:
        gid = int(run_as_group)
    if run_as_non_root and uid == 0:
        raise RuntimeConfigError("container has runAsNonRoot and image will run as root")
    return uid, gid, home


def capabilities(security_context: JSON | None) -> list[str]:
    """The default set after the container's ``capabilities.drop`` and ``add``."""
    caps = (security_context or {}).get("capabilities") or {}
    drop = {c.upper() for c in caps.get("drop") or []}
    add = [c.upper() for c in caps.get("add") or []]

    def full(c: str) -> str:
        return c if c.startswith("CAP_") else f"CAP_{c}"

    out = [] if "ALL" in drop else [c for c in DEFAULT_CAPABILITIES if c not in {full(d) for d in drop}]
    for c in add:
        if c != "ALL" and full(c) not in out:
            out.append(full(c))
    return out


def seccomp_profile(security_context: JSON | None, pod_security_context: JSON | None) -> JSON | None:
    """RuntimeDefault (or unset, as the kubelet's default is Unconfined) → the deny list filter."""
    profile = (security_context or {}).get("seccompProfile") or (pod_security_context or {}).get("seccompProfile")
    kind = (profile or {}).get("type", "Unconfined")
    if kind == "Unconfined":
        return None
    if kind != "RuntimeDefault":
        raise RuntimeConfigError(f"seccompProfile type {kind} is not supported by the local cluster")
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": list(SECCOMP_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }


def memory_limit(container: JSON) -> int | None:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return int(parse_quantity(limit)) if limit else None


def oci_config(
    *,
    process: Process,
    rootfs: Path,
    read_only_root: bool,
    no_new_privs: bool,
    caps: list[str],
    seccomp: JSON | None,
    netns: str | None,
    hostname: str,
    mounts: list[JSON],
    memory: int | None,
    nofile: tuple[int, int],
) -> JSON:
    """An OCI runtime spec (config.json) for ``runc run``."""
    privileged_caps = caps if process.uid == 0 else []
    namespaces: list[JSON] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns:
        namespaces.append({"type": "network", "path": netns})
    base_mounts: list[JSON] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",  # noqa: S108 - the container's own shm, a fresh tmpfs
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    binds = [
        {
            "destination": m["target"],
            "type": "bind",
            "source": m["source"],
            "options": ["rbind", "nosuid", "nodev", *(["ro"] if m.get("readOnly") else ["rw"])],
        }
        for m in mounts
    ]
    linux: JSON = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
    }
    if memory:
        linux["resources"]["memory"] = {"limit": memory}
    if seccomp:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": process.uid, "gid": process.gid, "additionalGids": process.groups},
            "args": process.argv,
            "env": process.env,
            "cwd": process.cwd,
            "capabilities": {
                "bounding": caps,
                "effective": privileged_caps,
                "permitted": privileged_caps,
                "inheritable": [],
                "ambient": [],
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": nofile[0], "hard": nofile[1]}],
            "noNewPrivileges": no_new_privs,
        },
        "root": {"path": str(rootfs), "readonly": read_only_root},
        "hostname": hostname,
        "mounts": base_mounts + binds,
        "linux": linux,
    }


def current_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


# --- I/O --------------------------------------------------------------------------------------


class Rootfs:
    """One container run's root: an overlay of a fresh upper directory over the unpacked image."""

    def __init__(self, image_root: Path, work: Path) -> None:
        self.lower = image_root
        self.work = work
        self.merged = work / "merged"

    def mount(self) -> Path:
        self.umount()
        for d in ("upper", "work", "merged"):
            (self.work / d).mkdir(parents=True, exist_ok=True)
        opts = f"lowerdir={self.lower},upperdir={self.work / 'upper'},workdir={self.work / 'work'}"
        _run(["mount", "-t", "overlay", "overlay", "-o", opts, str(self.merged)])
        return self.merged

    def umount(self) -> None:
        if self.merged.exists() and os.path.ismount(self.merged):
            _run(["umount", "-l", str(self.merged)])
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.work)], check=False)


def unmount_below(root: Path) -> None:
    """Lazily unmount every mount under ``root`` (deepest first): overlays a dead agent left."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as fh:
        targets = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OSError(f"{' '.join(argv[:3])}…: {(proc.stderr or proc.stdout).strip()}")


def runc_root(state_dir: Path) -> Path:
    """runc's state directory beside the agent's pod sandboxes (``.devcluster/pods-runc``)."""
    return state_dir.parent / f"{state_dir.name}-runc"


def container_pid(state_dir: Path, container_id: str) -> int | None:
    """The host pid of a running container's main process, from its status ``containerID``."""
    import json

    kind, _, cid = container_id.partition("://")
    with contextlib.suppress(OSError, ValueError, KeyError):
        if kind == "runc":
            state = json.loads((runc_root(state_dir) / cid / "state.json").read_text())
            return int(state["init_process_pid"]) or None
        if kind == "kubetts":
            uid, name = cid[:36], cid[37:].rsplit("-", 1)[0]
            return int((state_dir / uid / "pids" / name).read_text())
    return None


class Runc:
    """``runc`` with its own state directory (one per node agent)."""

    def __init__(self, binary: str, state: Path) -> None:
        self.binary = binary
        self.state = state
        state.mkdir(parents=True, exist_ok=True)

    def _base(self) -> list[str]:
        return [self.binary, "--root", str(self.state)]

    async def run(self, cid: str, bundle: Path, log: Any) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self._base(),
            "run",
            "--bundle",
            str(bundle),
            cid,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )

    async def _call(self, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *self._base(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace")

    async def kill(self, cid: str, signal: str) -> None:
        await self._call("kill", cid, signal)

    async def delete(self, cid: str) -> None:
        await self._call("delete", "--force", cid)

    async def pid(self, cid: str) -> int | None:
        import json

        rc, out = await self._call("state", cid)
        if rc != 0:
            return None
        with contextlib.suppress(ValueError, KeyError):
            pid = int(json.loads(out)["pid"])
            return pid or None
        return None

    def exec_argv(self, cid: str, command: list[str]) -> list[str]:
        """A command run inside the container (as its user, with its env): exec probes, preStop."""
        return [*self._base(), "exec", cid, *command]

    def cleanup_all(self) -> None:
        """Kill and delete every container a previous agent left (it was killed hard)."""
        import json

        proc = subprocess.run([*self._base(), "list", "--format", "json"], capture_output=True, text=True, check=False)
        with contextlib.suppress(ValueError):
            for c in json.loads(proc.stdout or "null") or []:
                subprocess.run([*self._base(), "kill", c["id"], "KILL"], capture_output=True, check=False)
                subprocess.run([*self._base(), "delete", "--force", c["id"]], capture_output=True, check=False)
