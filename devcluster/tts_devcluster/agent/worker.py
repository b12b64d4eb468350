"""One pod's life on the node agent: sandbox, init containers, containers, probes, status, teardown."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import net
from ..kube import ApiError
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
from .probes import ProbeState, run_probe
from .volumes import VolumeBuilder, VolumeError, Volumes

if TYPE_CHECKING:
    from .agent import NodeAgent, NodeInfo

log = logging.getLogger(__name__)
JSON = dict[str, Any]

BACKOFF_START = float(os.environ.get("KUBETTS_AGENT_BACKOFF_START", "10"))
BACKOFF_MAX = float(os.environ.get("KUBETTS_AGENT_BACKOFF_MAX", "300"))
BACKOFF_RESET_AFTER = 600.0


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


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

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self, pod_uid: str) -> JSON:
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "containerID": f"kubetts://{pod_uid[:8]}-{self.name}-{self.restart_count}",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodWorker:
    def __init__(self, agent: NodeAgent, pod: JSON, node: NodeInfo) -> None:
        self.agent = agent
        self.pod = pod
        self.node = node
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.ns: str = meta["namespace"]
        self.dir = agent.state_dir / self.uid
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
                    self.ip = self.agent.ipam.allocate(self.node, self.uid, self.pod.get("status", {}).get("podIP"))
                host_network = bool(self.pod["spec"].get("hostNetwork"))
                if not host_network and self.netns is None:
                    self.netns = (await asyncio.to_thread(net.create_pod_netns, self.uid, self.ip)).netns
                if not self.gpus:
                    self.gpus = self.agent.gpus.allocate(self.node, self.uid, self._gpu_request())
                self._vb = VolumeBuilder(self.agent.client, self.pod, self.dir / "volumes", self.ip, self.node.ip)
                self.volumes = await self._vb.build()
                self.write_etc_files()
                if self.netns:
                    await self.agent.sync_policies()
                self._sandbox_ready = True
                self._mark_dirty()
                return True
            except VolumeError as exc:
                await self.agent.event(self.pod, "FailedMount", str(exc), warning=True)
            except (net.NetError, ApiError, OSError, ValueError) as exc:
                log.warning("pod %s/%s: sandbox setup failed: %s", self.ns, self.name, exc)
                await self.agent.event(self.pod, "FailedCreatePodSandBox", str(exc), warning=True)
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
        lines += [f"{ip}\t{' '.join(names)}" for ip, names in self.agent.service_hosts(self.ns)]
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
                if rc == 0:
                    break
                if self.terminating.is_set():
                    return
                if policy == "Never":
                    await self.agent.event(self.pod, "Failed", f"init container {c.name} exited {rc}", warning=True)
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
            await self.agent.event(
                self.pod, "BackOff", f"Back-off restarting failed container {c.name}", warning=True, container=c.name
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), backoff)
        return BACKOFF_START if backoff == 0 else min(backoff * 2, BACKOFF_MAX)

    # --- one container run ----------------------------------------------------------------

    def _env(self, c: Container) -> dict[str, str]:
        ident = identity(self.pod, c.spec)
        env: dict[str, str] = {
            "PATH": self.agent.path_env,
            "HOSTNAME": self.pod["spec"].get("hostname") or self.name,
            "HOME": "/root" if ident.uid in (None, 0) else "/",
            "KUBERNETES_SERVICE_HOST": self.agent.kubernetes_service[0],
            "KUBERNETES_SERVICE_PORT": str(self.agent.kubernetes_service[1]),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.agent.kubernetes_service[1]),
            "KUBERNETES_PORT": f"tcp://{self.agent.kubernetes_service[0]}:{self.agent.kubernetes_service[1]}",
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
        cache = self.agent.env_cache
        if "configMapRef" in src:
            ref = src["configMapRef"]
            data = cache.get(("configmaps", self.ns, ref["name"]))
        else:
            ref = src["secretRef"]
            data = cache.get(("secrets", self.ns, ref["name"]))
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
                data = self.agent.env_cache.get((key, self.ns, ref["name"]))
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

    def _launch_spec(self, c: Container, ident: Identity) -> JSON:
        argv = list(c.spec.get("command") or []) + list(c.spec.get("args") or [])
        if not c.spec.get("command"):
            raise ContainerConfigError(
                "the devcluster runs no images: the container must name its command (see docs/adr/0002)"
            )
        if ident.run_as_non_root and ident.uid in (None, 0):
            raise ContainerConfigError("container has runAsNonRoot and image will run as root")
        env = self._env(c)
        argv = [expand(a, env) for a in argv]
        mounts = []
        termination = self._termination_file(c)
        termination.write_text("")
        termination.chmod(0o666)  # the container's user writes it
        mounts.append(
            {
                "source": str(termination),
                "target": c.spec.get("terminationMessagePath") or "/dev/termination-log",
                "readOnly": False,
            }
        )
        for m in c.spec.get("volumeMounts", []) or []:
            base = self.volumes.paths.get(m["name"])
            if base is None:
                raise ContainerConfigError(f"volumeMount {m['name']!r} has no volume")
            source = base / m["subPath"] if m.get("subPath") else base
            mounts.append({"source": str(source), "target": m["mountPath"], "readOnly": bool(m.get("readOnly"))})
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
            "mounts": mounts,
            "etc": {
                "hosts": str(self.dir / "etc" / "hosts"),
                "resolv.conf": str(self.dir / "etc" / "resolv.conf"),
                "hostname": str(self.dir / "etc" / "hostname"),
            },
            "expose": self.agent.expose_paths,
        }

    async def _run_once(self, c: Container) -> int:
        """Start the container, run its probes, wait for it to exit; returns the exit code."""
        ident = identity(self.pod, c.spec)
        try:
            await self.agent.refresh_env_cache(self.ns, c.spec)
            spec = self._launch_spec(c, ident)
        except (ContainerConfigError, ValueError, ApiError) as exc:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            self._mark_dirty()
            await self.agent.event(self.pod, "Failed", f"Error: {exc}", warning=True, container=c.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), 10)
            return 1
        spec_path = self.dir / f"launch-{c.name}.json"
        spec_path.write_text(json.dumps(spec))
        spec_path.chmod(0o600)
        log_dir = self.dir / "logs" / c.name
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{c.restart_count}.log"
        started_at = now_iso()
        with open(log_path, "ab") as logf:
            c.proc = await asyncio.create_subprocess_exec(
                self.agent.python,
                "-m",
                "tts_devcluster.agent.launcher",
                str(spec_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logf,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        pid = c.proc.pid
        (self.dir / "pids" / c.name).write_text(str(pid))
        if "terminated" in c.state:
            c.last_state = c.state
        c.state = {"running": {"startedAt": started_at}}
        c.stopping = False
        has_startup = bool(c.spec.get("startupProbe"))
        c.started = not has_startup
        c.ready = not c.spec.get("readinessProbe") and c.started and not c.init
        self._mark_dirty()
        await self.agent.event(self.pod, "Started", f"Started container {c.name}", container=c.name)
        probes = [] if c.init else self._probe_tasks(c, ident)
        try:
            rc = await c.proc.wait()
        finally:
            for t in probes:
                t.cancel()
        (self.dir / "pids" / c.name).unlink(missing_ok=True)
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
            "containerID": f"kubetts://{self.uid[:8]}-{c.name}-{c.restart_count}",
        }
        if message:
            term["message"] = message
        if reason == "StartError":
            await self.agent.event(self.pod, "Failed", message, warning=True, container=c.name)
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

    async def _probe(self, c: Container, spec: ProbeSpec, user: tuple[int, int] | None) -> tuple[bool, str]:
        pid = c.proc.pid if c.proc else None
        return await run_probe(spec, self.ip, pid, self.agent.http, user)

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
                await self.agent.event(
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
                await self.agent.event(
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
                    await self.agent.event(
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
        await self.agent.event(self.pod, "Killing", reason, container=c.name)
        grace = self._grace() if grace is None else grace
        deadline = time.monotonic() + max(grace, 0.1)
        if not self.killed_fast:
            # the preStop hook runs first and counts against the grace period, as in the kubelet
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pre_stop(c, proc.pid), max(grace, 0.1))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _pre_stop(self, c: Container, pid: int) -> None:
        """``lifecycle.preStop``: sleep, exec or httpGet, before SIGTERM."""
        hook = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
        if "sleep" in hook:
            await asyncio.sleep(float(hook["sleep"].get("seconds", 0)))
        elif "exec" in hook:
            ident = identity(self.pod, c.spec)
            user = ["-S", str(ident.uid), "-G", str(ident.gid or 0)] if ident.uid is not None else []
            proc = await asyncio.create_subprocess_exec(
                "nsenter",
                "-t",
                str(pid),
                "-n",
                "-m",
                "-u",
                *user,
                "--",
                *hook["exec"].get("command", []),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()
        elif "httpGet" in hook:
            spec = probe_spec(c.spec, {"httpGet": hook["httpGet"], "timeoutSeconds": 10})
            if spec is not None:
                await run_probe(spec, self.ip, pid, self.agent.http, None)

    async def _stop_containers(self) -> None:
        grace = 2.0 if self.killed_fast else self._grace()
        running = [c for c in self.init_containers + self.containers if c.proc is not None]
        await asyncio.gather(*(self._kill(c, f"Stopping container {c.name}", grace) for c in running))

    def _teardown(self) -> None:
        if self.netns:
            net.delete_pod_netns(self.netns)
        self.agent.ipam.release(self.node, self.uid)
        self.agent.gpus.release(self.node, self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)

    async def _finalize_deletion(self) -> None:
        """The kubelet's last word: remove the pod object once every container has stopped."""
        if not self.pod["metadata"].get("deletionTimestamp"):
            return
        try:
            await self.agent.client.delete(
                f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except ApiError as exc:
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
            updated = await self.agent.client.patch(
                f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status",
                {"metadata": {"uid": self.uid}, "status": self.build_status()},
                strategic=True,
            )
            self.pod = updated
        except ApiError as exc:
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
                except (ApiError, OSError) as exc:
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
