"""One pod's life on the node agent: sandbox, init containers, containers, probes, status, teardown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tts_crds.times import now_iso

from .. import net
from ..kube import KubeApiError
from .images import Image, ImageError, pull_policy
from .podspec import (
    Identity,
    ProbeSpec,
    condition,
    expand,
    field_value,
    identity,
    pod_phase,
    probe_spec,
    resource_value,
)
from .probes import ExecArgv, ProbeState, nsenter_argv, run_probe
from .runtime import (
    Process,
    Rootfs,
    RuntimeConfigError,
    capabilities,
    container_argv,
    current_nofile,
    memory_limit,
    merge_env,
    oci_config,
    resolve_user,
    seccomp_profile,
)
from .volumes import VolumeBuilder, VolumeError, Volumes

if TYPE_CHECKING:
    from .allocation import NodeInfo
    from .context import PodContext

log = logging.getLogger(__name__)
JSON = dict[str, Any]

BACKOFF_START = float(os.environ.get("KUBETTS_AGENT_BACKOFF_START", "10"))
BACKOFF_MAX = float(os.environ.get("KUBETTS_AGENT_BACKOFF_MAX", "300"))
BACKOFF_RESET_AFTER = 600.0
PULL_BACKOFF_START = float(os.environ.get("KUBETTS_AGENT_PULL_BACKOFF_START", "10"))


class ContainerConfigError(RuntimeError):
    """The container cannot be started as specified (reported as CreateContainerConfigError)."""


@dataclass
class Container:
    spec: JSON
    init: bool
    restart_count: int = 0
    proc: asyncio.subprocess.Process | None = None
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict)
    started: bool = False
    ready: bool = False
    stopping: bool = False
    image: Image | None = None  # None: not pulled yet, or run as a process (see ``as_process``)
    as_process: bool = False
    pull_backoff: float = 0.0
    container_id: str = ""
    rootfs: Rootfs | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def cid(self, pod_uid: str) -> str:
        return f"{pod_uid}-{self.name}-{self.restart_count}"

    def status(self, pod_uid: str) -> JSON:
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": self.image.image_id if self.image else "",
            "containerID": self.container_id,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodWorker:
    def __init__(self, ctx: PodContext, pod: JSON, node: NodeInfo) -> None:
        self.ctx = ctx
        self.pod = pod
        self.node = node
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.ns: str = meta["namespace"]
        self.dir = ctx.state_dir / self.uid
        self.ip = ""
        self.netns: str | None = None
        self.filter_rules = ""  # iptables filter table last applied in the pod's netns
        self.volumes = Volumes()
        self.gpus: list[int] = []
        self.start_time = pod.get("status", {}).get("startTime") or now_iso()
        spec = pod["spec"]
        self.init_containers = [Container(c, True) for c in spec.get("initContainers", []) or []]
        self.containers = [Container(c, False) for c in spec.get("containers", [])]
        self.init_done = not self.init_containers
        self.terminating = asyncio.Event()
        self.killed_fast = False
        self._dirty = asyncio.Event()
        self._status_task: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._vb: VolumeBuilder | None = None
        self._sandbox_ready = False

    # --- entry points called by the agent -------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pod {self.ns}/{self.name}")
        # say at once that nothing runs yet (after an agent restart the old status claims Ready)
        self._mark_dirty()

    def update(self, pod: JSON) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not self.terminating.is_set():
            log.info("pod %s/%s is being deleted", self.ns, self.name)
            self.terminating.set()

    async def stop_now(self) -> None:
        """Agent shutdown or a force-deleted pod: stop processes quickly, keep API objects as they are."""
        self.killed_fast = True
        self.terminating.set()
        if self._task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    # --- main --------------------------------------------------------------------------------

    async def _run(self) -> None:
        self._status_task = asyncio.create_task(self._status_writer())
        try:
            if await self._setup_sandbox():
                await self._run_init_containers()
                if self.init_done and not self.terminating.is_set():
                    loops = [asyncio.create_task(self._container_loop(c)) for c in self.containers]
                    await self.terminating.wait()
                    await self._stop_containers()
                    await asyncio.gather(*loops, return_exceptions=True)
            await self.terminating.wait()
            await self._stop_containers()
        except Exception:
            log.exception("pod %s/%s: worker failed", self.ns, self.name)
            await self.terminating.wait()
            await self._stop_containers()
        finally:
            await self._flush_status()
            if self._status_task:
                self._status_task.cancel()
            self._teardown()
            if not self.killed_fast:
                await self._finalize_deletion()

    async def _setup_sandbox(self) -> bool:
        """Network, volumes and /etc files; retried (with events) until it works or the pod goes."""
        delay = 2.0
        while not self.terminating.is_set():
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                (self.dir / "pids").mkdir(exist_ok=True)
                if not self.ip:
                    self.ip = self.ctx.sandbox.ipam.allocate(
                        self.node, self.uid, self.pod.get("status", {}).get("podIP")
                    )
                host_network = bool(self.pod["spec"].get("hostNetwork"))
                if not host_network and self.netns is None:
                    self.netns = (await asyncio.to_thread(net.create_pod_netns, self.uid, self.ip)).netns
                if not self.gpus:
                    self.gpus = self.ctx.sandbox.gpus.allocate(self.node, self.uid, self._gpu_request())
                self._vb = VolumeBuilder(self.ctx.client, self.pod, self.dir / "volumes", self.ip, self.node.ip)
                self.volumes = await self._vb.build()
                self.write_etc_files()
                if self.netns:
                    await self.ctx.sandbox.sync_policies()
                self._sandbox_ready = True
                self._mark_dirty()
                return True
            except VolumeError as exc:
                await self.ctx.event(self.pod, "FailedMount", str(exc), warning=True)
            except (net.NetError, KubeApiError, OSError, ValueError) as exc:
                log.warning("pod %s/%s: sandbox setup failed: %s", self.ns, self.name, exc)
                await self.ctx.event(self.pod, "FailedCreatePodSandBox", str(exc), warning=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), delay)
            delay = min(delay * 2, 30)
        return False

    def _gpu_request(self) -> int:
        total = 0
        for c in self.pod["spec"].get("containers", []):
            limits = (c.get("resources") or {}).get("limits") or {}
            for key, value in limits.items():
                if key == "nvidia.com/gpu" or key.startswith("nvidia.com/mig-"):
                    total += int(value)
        return total

    def write_etc_files(self) -> None:
        etc = self.dir / "etc"
        etc.mkdir(exist_ok=True)
        spec = self.pod["spec"]
        hostname = spec.get("hostname") or self.name
        sub = spec.get("subdomain")
        fqdn = f"{hostname}.{sub}.{self.ns}.svc.cluster.local" if sub else ""
        lines = [
            "# Kubernetes-managed hosts file (kube-tts devcluster node agent)",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            f"{self.ip}\t{' '.join(x for x in (fqdn, hostname) if x)}",
        ]
        lines += [f"{ip}\t{' '.join(names)}" for ip, names in self.ctx.sandbox.service_hosts(self.ns)]
        for alias in spec.get("hostAliases", []) or []:
            lines.append(f"{alias['ip']}\t{' '.join(alias.get('hostnames', []))}")
        hosts = etc / "hosts"
        # rewrite in place: containers see this file through a bind mount of its inode
        with open(hosts, "a+") as fh:
            fh.seek(0)
            fh.truncate()
            fh.write("\n".join(lines) + "\n")
        os.chmod(hosts, 0o644)
        search = f"search {self.ns}.svc.cluster.local svc.cluster.local cluster.local"
        (etc / "resolv.conf").write_text(f"{search}\nnameserver 127.0.0.53\noptions ndots:5\n")
        (etc / "hostname").write_text(hostname + "\n")

    async def _run_init_containers(self) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for c in self.init_containers:
            backoff = 0.0
            while not self.terminating.is_set():
                rc = await self._run_once(c)
                if rc is None:
                    continue  # not started (image pull, config): retried without counting a restart
                if rc == 0:
                    break
                if self.terminating.is_set():
                    return
                if policy == "Never":
                    await self.ctx.event(self.pod, "Failed", f"init container {c.name} exited {rc}", warning=True)
                    self._mark_dirty()
                    await self.terminating.wait()
                    return
                c.restart_count += 1
                backoff = await self._backoff(c, backoff)
            if self.terminating.is_set():
                return
        self.init_done = True
        self._mark_dirty()

    async def _container_loop(self, c: Container) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        backoff = 0.0
        while not self.terminating.is_set():
            started = time.monotonic()
            rc = await self._run_once(c)
            if self.terminating.is_set():
                return
            if rc is None:
                continue  # not started (image pull, config): retried without counting a restart
            if policy == "Never" or (policy == "OnFailure" and rc == 0):
                return
            if time.monotonic() - started > BACKOFF_RESET_AFTER:
                backoff = 0.0
            c.restart_count += 1
            backoff = await self._backoff(c, backoff)

    async def _backoff(self, c: Container, backoff: float) -> float:
        """Wait before a restart, reporting CrashLoopBackOff; returns the next delay."""
        if backoff > 0:
            msg = f"back-off {backoff:.0f}s restarting failed container={c.name} pod={self.name}"
            if "terminated" in c.state:
                c.last_state = c.state
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": msg}}
            self._mark_dirty()
            await self.ctx.event(
                self.pod, "BackOff", f"Back-off restarting failed container {c.name}", warning=True, container=c.name
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), backoff)
        return BACKOFF_START if backoff == 0 else min(backoff * 2, BACKOFF_MAX)

    # --- one container run ----------------------------------------------------------------

    def _env(self, c: Container) -> dict[str, str]:
        ident = identity(self.pod, c.spec)
        env: dict[str, str] = {}
        if c.as_process:
            # a process sees the host's filesystem: the checkout's venv first on PATH
            env["PATH"] = self.ctx.process_mode.path_env
            env["HOME"] = "/root" if ident.uid in (None, 0) else "/"
        env |= {
            "HOSTNAME": self.pod["spec"].get("hostname") or self.name,
            "KUBERNETES_SERVICE_HOST": self.ctx.kubernetes_service[0],
            "KUBERNETES_SERVICE_PORT": str(self.ctx.kubernetes_service[1]),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.ctx.kubernetes_service[1]),
            "KUBERNETES_PORT": f"tcp://{self.ctx.kubernetes_service[0]}:{self.ctx.kubernetes_service[1]}",
        }
        if self.gpus:
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(g) for g in self.gpus)
        for src in c.spec.get("envFrom", []) or []:
            prefix = src.get("prefix", "")
            data = self._env_source(src)
            env.update({prefix + k: v for k, v in data.items()})
        for var in c.spec.get("env", []) or []:
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
            elif "valueFrom" in var:
                value = self._value_from(c, var["valueFrom"], var["name"])
                if value is not None:
                    env[var["name"]] = value
            else:
                env[var["name"]] = ""
        return env

    def _env_source(self, src: JSON) -> dict[str, str]:
        if "configMapRef" in src:
            ref = src["configMapRef"]
            data = self.ctx.env.data("configmaps", self.ns, ref["name"])
        else:
            ref = src["secretRef"]
            data = self.ctx.env.data("secrets", self.ns, ref["name"])
        if data is None:
            if ref.get("optional"):
                return {}
            raise ContainerConfigError(
                f"{'configmap' if 'configMapRef' in src else 'secret'} {ref['name']!r} not found"
            )
        return data

    def _value_from(self, c: Container, src: JSON, name: str) -> str | None:
        if "fieldRef" in src:
            return field_value(self.pod, src["fieldRef"]["fieldPath"], self.ip, self.node.ip)
        if "resourceFieldRef" in src:
            return resource_value(c.spec, src["resourceFieldRef"])
        for kind, key in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
            if kind in src:
                ref = src[kind]
                data = self.ctx.env.data(key, self.ns, ref["name"])
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        return None
                    raise ContainerConfigError(f"env {name}: {key[:-1]} {ref['name']!r} key {ref['key']!r} not found")
                return data[ref["key"]]
        raise ContainerConfigError(f"env {name}: unsupported valueFrom {list(src)}")

    def _termination_file(self, c: Container) -> Path:
        path = self.dir / "termination" / c.name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _termination_message(self, c: Container, rc: int, log_path: Path) -> str:
        """What the container wrote to its terminationMessagePath, or (with the policy
        FallbackToLogsOnError and a failure) the end of its log, as the kubelet reports it."""
        try:
            message = self._termination_file(c).read_text(errors="replace")[:4096].strip()
        except OSError:
            message = ""
        if not message and rc != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:
                lines = log_path.read_text(errors="replace").splitlines()[-80:]
            except OSError:
                lines = []
            message = "\n".join(lines)[-2048:]
        return message

    def _mounts(self, c: Container) -> list[JSON]:
        """The termination-message file and the container's volumeMounts, as bind sources."""
        termination = self._termination_file(c)
        termination.write_text("")
        termination.chmod(0o666)  # the container's user writes it
        mounts: list[JSON] = [
            {
                "source": str(termination),
                "target": c.spec.get("terminationMessagePath") or "/dev/termination-log",
                "readOnly": False,
            }
        ]
        for m in c.spec.get("volumeMounts", []) or []:
            base = self.volumes.paths.get(m["name"])
            if base is None:
                raise ContainerConfigError(f"volumeMount {m['name']!r} has no volume")
            source = base / m["subPath"] if m.get("subPath") else base
            mounts.append({"source": str(source), "target": m["mountPath"], "readOnly": bool(m.get("readOnly"))})
        return mounts

    def _etc_files(self) -> dict[str, str]:
        return {name: str(self.dir / "etc" / name) for name in ("hosts", "resolv.conf", "hostname")}

    def _launch_spec(self, c: Container, ident: Identity) -> JSON:
        """Process mode (opt-in, see ADR 0040): what the launcher needs to run the command from the host."""
        argv = list(c.spec.get("command") or []) + list(c.spec.get("args") or [])
        if not c.spec.get("command"):
            raise ContainerConfigError(
                "this container runs as a process from the checkout (KUBETTS_AGENT_PROCESS_IMAGES), "
                "so it must name its command"
            )
        if ident.run_as_non_root and ident.uid in (None, 0):
            raise ContainerConfigError("container has runAsNonRoot and image will run as root")
        env = self._env(c)
        argv = [expand(a, env) for a in argv]
        return {
            "argv": argv,
            "env": env,
            "cwd": c.spec.get("workingDir") or "/",
            "uid": ident.uid,
            "gid": ident.gid,
            "groups": list(ident.groups),
            "noNewPrivs": ident.no_new_privs,
            "readOnlyRoot": ident.read_only_root,
            "netns": net.netns_path(self.netns) if self.netns else None,
            "hostname": self.pod["spec"].get("hostname") or self.name,
            "mounts": self._mounts(c),
            "etc": self._etc_files(),
            "expose": list(self.ctx.process_mode.expose_paths),
        }

    def _bundle_config(self, c: Container, ident: Identity, image: Image, rootfs: Path) -> JSON:
        """Image mode: the OCI runtime spec of this container run."""
        pod_env = self._env(c)
        spec = dict(c.spec)
        for key in ("command", "args"):
            if spec.get(key):
                spec[key] = [expand(a, pod_env) for a in spec[key]]
        uid, gid, home = resolve_user(ident.uid, ident.gid, image.config.user, image.rootfs, ident.run_as_non_root)
        env = merge_env(image.config.env, pod_env)
        env.setdefault("HOME", home)
        mounts = self._mounts(c)
        if not self.pod["spec"].get("hostNetwork"):
            etc = self._etc_files().items()
            mounts += [{"source": src, "target": f"/etc/{name}", "readOnly": False} for name, src in etc]
        csc = c.spec.get("securityContext") or {}
        psc = self.pod["spec"].get("securityContext") or {}
        return oci_config(
            process=Process(
                argv=container_argv(spec, image.config),
                env=[f"{k}={v}" for k, v in env.items()],
                cwd=c.spec.get("workingDir") or image.config.working_dir or "/",
                uid=uid,
                gid=gid,
                groups=list(ident.groups),
            ),
            rootfs=rootfs,
            read_only_root=ident.read_only_root,
            no_new_privs=ident.no_new_privs,
            caps=capabilities(csc),
            seccomp=seccomp_profile(csc, psc),
            netns=net.netns_path(self.netns) if self.netns else None,
            hostname=self.pod["spec"].get("hostname") or self.name,
            mounts=mounts,
            memory=memory_limit(c.spec),
            nofile=current_nofile(),
        )

    async def _pull(self, c: Container) -> bool:
        """Get the container's image per its pull policy, as a kubelet reports it (events, reasons)."""
        image = c.spec.get("image", "")
        try:
            policy = pull_policy(c.spec)
            if policy == "Always" or self.ctx.images.present(image) is None:
                await self.ctx.event(self.pod, "Pulling", f'Pulling image "{image}"', container=c.name)
            t0 = time.monotonic()
            got, pulled = await self.ctx.images.ensure(image, policy)
        except ImageError as exc:
            c.state = {"waiting": {"reason": exc.reason, "message": str(exc)}}
            self._mark_dirty()
            await self.ctx.event(
                self.pod, "Failed", f'Failed to pull image "{image}": {exc}', warning=True, container=c.name
            )
            await self.ctx.event(self.pod, "Failed", f"Error: {exc.reason}", warning=True, container=c.name)
            c.pull_backoff = PULL_BACKOFF_START if not c.pull_backoff else min(c.pull_backoff * 2, BACKOFF_MAX)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), 1.0)
            if exc.reason == "ErrImagePull":
                c.state = {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{image}": ErrImagePull: {exc}',
                    }
                }
                self._mark_dirty()
                await self.ctx.event(
                    self.pod, "BackOff", f'Back-off pulling image "{image}"', warning=True, container=c.name
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), c.pull_backoff)
            return False
        c.pull_backoff = 0.0
        c.image = got
        if pulled:
            took = time.monotonic() - t0
            msg = f'Successfully pulled image "{image}" in {took:.3f}s. Image size: {got.size} bytes.'
        else:
            msg = f'Container image "{image}" already present on machine'
        await self.ctx.event(self.pod, "Pulled", msg, container=c.name)
        return True

    async def _start(self, c: Container, ident: Identity, log_path: Path) -> asyncio.subprocess.Process | None:
        """Start the container (image mode: pull, overlay, ``runc run``); None when it cannot start."""
        try:
            await self.ctx.env.refresh(self.ns, c.spec)
            if c.as_process:
                spec_path = self.dir / f"launch-{c.name}.json"
                spec_path.write_text(json.dumps(self._launch_spec(c, ident)))
                spec_path.chmod(0o600)
                c.container_id = f"kubetts://{c.cid(self.uid)}"
                with open(log_path, "ab") as logf:
                    return await asyncio.create_subprocess_exec(
                        self.ctx.process_mode.python,
                        "-m",
                        "tts_devcluster.agent.launcher",
                        str(spec_path),
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=logf,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                    )
            if not await self._pull(c):
                return None
            assert c.image is not None
            cid = c.cid(self.uid)
            rootfs = Rootfs(c.image.rootfs, self.dir / "rootfs" / cid)
            config = self._bundle_config(c, ident, c.image, rootfs.merged)
            await asyncio.to_thread(rootfs.mount)
            c.rootfs = rootfs
            bundle = self.dir / "bundles" / cid
            bundle.mkdir(parents=True, exist_ok=True)
            (bundle / "config.json").write_text(json.dumps(config))
            (bundle / "config.json").chmod(0o600)
            c.container_id = f"runc://{cid}"
            with open(log_path, "ab") as logf:
                return await self.ctx.runc.run(cid, bundle, logf)
        except (ContainerConfigError, RuntimeConfigError, ValueError, KubeApiError, OSError) as exc:
            await self._cleanup_run(c)
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            self._mark_dirty()
            await self.ctx.event(self.pod, "Failed", f"Error: {exc}", warning=True, container=c.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), 10)
            return None

    async def _cleanup_run(self, c: Container) -> None:
        """After an image-mode run: the runtime's record, the overlay and the bundle go."""
        if c.as_process:
            return
        cid = c.cid(self.uid)
        await self.ctx.runc.delete(cid)
        if c.rootfs is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(c.rootfs.umount)
            c.rootfs = None
        shutil.rmtree(self.dir / "bundles" / cid, ignore_errors=True)

    async def _run_once(self, c: Container) -> int | None:
        """Start the container, run its probes, wait for it to exit; the exit code, or None when it
        could not be started (a pull or config error: no restart is counted, as in the kubelet)."""
        ident = identity(self.pod, c.spec)
        c.as_process = self.ctx.process_mode.matches(c.spec.get("image", ""))
        log_dir = self.dir / "logs" / c.name
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{c.restart_count}.log"
        started_at = now_iso()
        proc = await self._start(c, ident, log_path)
        if proc is None:
            return None
        c.proc = proc
        (self.dir / "pids" / c.name).write_text(str(proc.pid))
        if "terminated" in c.state:
            c.last_state = c.state
        c.state = {"running": {"startedAt": started_at}}
        c.stopping = False
        has_startup = bool(c.spec.get("startupProbe"))
        c.started = not has_startup
        c.ready = not c.spec.get("readinessProbe") and c.started and not c.init
        self._mark_dirty()
        await self.ctx.event(self.pod, "Started", f"Started container {c.name}", container=c.name)
        probes = [] if c.init else self._probe_tasks(c, ident)
        try:
            rc = await proc.wait()
        finally:
            for t in probes:
                t.cancel()
        (self.dir / "pids" / c.name).unlink(missing_ok=True)
        await self._cleanup_run(c)
        reason = "Completed" if rc == 0 else "Error"
        message = self._termination_message(c, rc, log_path)
        if rc == 127 and (launch_error := _launcher_error(log_path)):
            message, reason = launch_error, "StartError"
        if rc < 0:
            rc = 128 - rc  # killed by a signal: the runtime reports 128 + signal number
        c.proc = None
        c.ready = False
        c.started = False
        term: JSON = {
            "exitCode": rc,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": now_iso(),
            "containerID": c.container_id,
        }
        if message:
            term["message"] = message
        if reason == "StartError":
            await self.ctx.event(self.pod, "Failed", message, warning=True, container=c.name)
        c.state = {"terminated": term}
        self._mark_dirty()
        return rc

    def _probe_tasks(self, c: Container, ident: Identity) -> list[asyncio.Task[None]]:
        tasks = []
        user = (ident.uid, ident.gid or 0) if ident.uid is not None else None
        startup = probe_spec(c.spec, c.spec.get("startupProbe"))
        liveness = probe_spec(c.spec, c.spec.get("livenessProbe"))
        readiness = probe_spec(c.spec, c.spec.get("readinessProbe"))
        started = asyncio.Event()
        if startup is None:
            started.set()
        else:
            tasks.append(asyncio.create_task(self._startup_loop(c, startup, started, user)))
        if liveness is not None:
            tasks.append(asyncio.create_task(self._liveness_loop(c, liveness, started, user)))
        if readiness is not None:
            tasks.append(asyncio.create_task(self._readiness_loop(c, readiness, started, user)))
        return tasks

    def _exec_argv(self, c: Container, user: tuple[int, int] | None) -> ExecArgv | None:
        """How to run a command inside ``c`` now (exec probes, preStop), or None if it is not running."""
        if c.proc is None:
            return None
        if c.as_process:
            return nsenter_argv(c.proc.pid, user)
        cid = c.cid(self.uid)
        return lambda command: self.ctx.runc.exec_argv(cid, command)

    async def _probe(self, c: Container, spec: ProbeSpec, user: tuple[int, int] | None) -> tuple[bool, str]:
        return await run_probe(spec, self.ip, self.ctx.http, self._exec_argv(c, user))

    async def _startup_loop(
        self, c: Container, spec: ProbeSpec, started: asyncio.Event, user: tuple[int, int] | None
    ) -> None:
        state = ProbeState(spec)
        await asyncio.sleep(spec.initial_delay)
        while True:
            ok, msg = await self._probe(c, spec, user)
            decided = state.record(ok)
            if decided is True:
                c.started = True
                c.ready = c.ready or not c.spec.get("readinessProbe")
                started.set()
                self._mark_dirty()
                return
            if decided is False:
                await self.ctx.event(
                    self.pod, "Unhealthy", f"Startup probe failed: {msg}", warning=True, container=c.name
                )
                await self._kill(c, f"Container {c.name} failed startup probe, will be restarted")
                return
            await asyncio.sleep(spec.period)

    async def _liveness_loop(
        self, c: Container, spec: ProbeSpec, started: asyncio.Event, user: tuple[int, int] | None
    ) -> None:
        await started.wait()
        state = ProbeState(spec)
        await asyncio.sleep(spec.initial_delay)
        while True:
            ok, msg = await self._probe(c, spec, user)
            if not ok:
                await self.ctx.event(
                    self.pod, "Unhealthy", f"Liveness probe failed: {msg}", warning=True, container=c.name
                )
            if state.record(ok) is False:
                await self._kill(c, f"Container {c.name} failed liveness probe, will be restarted")
                return
            await asyncio.sleep(spec.period)

    async def _readiness_loop(
        self, c: Container, spec: ProbeSpec, started: asyncio.Event, user: tuple[int, int] | None
    ) -> None:
        await started.wait()
        state = ProbeState(spec)
        await asyncio.sleep(spec.initial_delay)
        while True:
            ok, msg = await self._probe(c, spec, user)
            decided = state.record(ok)
            if decided is not None:
                c.ready = decided
                self._mark_dirty()
                if decided is False and msg:
                    await self.ctx.event(
                        self.pod, "Unhealthy", f"Readiness probe failed: {msg}", warning=True, container=c.name
                    )
            await asyncio.sleep(spec.period)

    # --- stopping ---------------------------------------------------------------------------

    def _grace(self) -> float:
        meta_grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if meta_grace is not None:
            return float(meta_grace)
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    async def _kill(self, c: Container, reason: str, grace: float | None = None) -> None:
        proc = c.proc
        if proc is None or c.stopping:
            return
        c.stopping = True
        await self.ctx.event(self.pod, "Killing", reason, container=c.name)
        grace = self._grace() if grace is None else grace
        deadline = time.monotonic() + max(grace, 0.1)
        if not self.killed_fast:
            # the preStop hook runs first and counts against the grace period, as in the kubelet
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pre_stop(c), max(grace, 0.1))
        await self._signal(c, proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            await self._signal(c, proc, signal.SIGKILL)
            await proc.wait()

    async def _signal(self, c: Container, proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        """SIGTERM/SIGKILL to the container: a process container's group, or through the runtime
        (``runc run`` passes SIGTERM on to the container; SIGKILL goes by ``runc kill``)."""
        with contextlib.suppress(ProcessLookupError):
            if c.as_process:
                os.killpg(proc.pid, sig)
            elif sig == signal.SIGKILL:
                await self.ctx.runc.kill(c.cid(self.uid), "KILL")
            else:
                os.kill(proc.pid, sig)

    async def _pre_stop(self, c: Container) -> None:
        """``lifecycle.preStop``: sleep, exec or httpGet, before SIGTERM."""
        hook = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
        if "sleep" in hook:
            await asyncio.sleep(float(hook["sleep"].get("seconds", 0)))
        elif "exec" in hook:
            ident = identity(self.pod, c.spec)
            user = (ident.uid, ident.gid or 0) if ident.uid is not None else None
            argv = self._exec_argv(c, user)
            if argv is None:
                return
            proc = await asyncio.create_subprocess_exec(
                *argv(hook["exec"].get("command", [])),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()
        elif "httpGet" in hook:
            spec = probe_spec(c.spec, {"httpGet": hook["httpGet"], "timeoutSeconds": 10})
            if spec is not None:
                await run_probe(spec, self.ip, self.ctx.http, None)

    async def _stop_containers(self) -> None:
        grace = 2.0 if self.killed_fast else self._grace()
        running = [c for c in self.init_containers + self.containers if c.proc is not None]
        await asyncio.gather(*(self._kill(c, f"Stopping container {c.name}", grace) for c in running))

    def _teardown(self) -> None:
        for c in self.init_containers + self.containers:
            if c.rootfs is not None:
                with contextlib.suppress(OSError):
                    c.rootfs.umount()
        if self.netns:
            net.delete_pod_netns(self.netns)
        self.ctx.sandbox.ipam.release(self.node, self.uid)
        self.ctx.sandbox.gpus.release(self.node, self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)

    async def _finalize_deletion(self) -> None:
        """The kubelet's last word: remove the pod object once every container has stopped."""
        if not self.pod["metadata"].get("deletionTimestamp"):
            return
        try:
            await self.ctx.client.delete(
                f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except KubeApiError as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s/%s: final delete failed: %s", self.ns, self.name, exc)

    # --- status -----------------------------------------------------------------------------

    def _mark_dirty(self) -> None:
        self._dirty.set()

    def build_status(self) -> JSON:
        now = now_iso()
        prev = self.pod.get("status", {}).get("conditions", []) or []
        policy = self.pod["spec"].get("restartPolicy", "Always")
        states = [(c.state, c.restart_count) for c in self.containers]
        all_ready = bool(self.containers) and all(c.ready for c in self.containers)
        not_ready = [c.name for c in self.containers if not c.ready]
        msg = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else None
        conditions = [
            condition("PodReadyToStartContainers", self._sandbox_ready, now, prev),
            condition(
                "Initialized",
                self.init_done,
                now,
                prev,
                "ContainersNotInitialized",
                "containers with incomplete status: "
                f"[{' '.join(c.name for c in self.init_containers if 'terminated' not in c.state)}]",
            ),
            condition("ContainersReady", all_ready, now, prev, "ContainersNotReady", msg),
            condition("Ready", all_ready, now, prev, "ContainersNotReady", msg),
        ]
        status: JSON = {
            "phase": pod_phase(policy, self.init_done, states),
            "hostIP": self.node.ip,
            "hostIPs": [{"ip": self.node.ip}],
            "startTime": self.start_time,
            "conditions": conditions,
            "containerStatuses": [c.status(self.uid) for c in self.containers],
        }
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        if self.init_containers:
            status["initContainerStatuses"] = [c.status(self.uid) for c in self.init_containers]
        return status

    async def _status_writer(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)  # coalesce bursts of changes
            self._dirty.clear()
            await self._flush_status()

    async def _flush_status(self) -> None:
        if self.killed_fast:
            return
        try:
            updated = await self.ctx.client.patch(
                f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status",
                {"metadata": {"uid": self.uid}, "status": self.build_status()},
                strategic=True,
            )
            self.pod = updated
        except KubeApiError as exc:
            if exc.status == 404:
                self.terminating.set()
            else:
                log.warning("pod %s/%s: status update failed: %s", self.ns, self.name, exc)
        except OSError as exc:
            log.warning("pod %s/%s: status update failed: %s", self.ns, self.name, exc)
            self._dirty.set()

    def refresh_hosts(self) -> None:
        if self._sandbox_ready:
            with contextlib.suppress(OSError):
                self.write_etc_files()

    async def refresh_tokens(self) -> None:
        if self._vb is None:
            return
        for token in self.volumes.tokens:
            if time.monotonic() >= token.refresh_at:
                try:
                    await self._vb.refresh_token(token)
                except (KubeApiError, OSError) as exc:
                    log.warning("pod %s/%s: token refresh failed: %s", self.ns, self.name, exc)


def _launcher_error(log_path: Path) -> str:
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-5:]
    except OSError:
        return ""
    for line in reversed(tail):
        if line.startswith("kube-tts-launcher:"):
            return line.removeprefix("kube-tts-launcher: ")
    return ""
