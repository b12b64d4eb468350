"""Probe handlers (HTTP GET, TCP, exec), with the kubelet's success rules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from .podspec import ProbeSpec

# turns a command into the argv that runs it inside the container (None: it is not running)
ExecArgv = Callable[[list[str]], list[str]]


def nsenter_argv(pid: int, user: tuple[int, int] | None) -> ExecArgv:
    """A process-mode container: enter its namespaces (and user) with nsenter."""

    def argv(command: list[str]) -> list[str]:
        out = ["nsenter", "-t", str(pid), "-n", "-m", "-u"]
        if user is not None:
            out += ["-S", str(user[0]), "-G", str(user[1])]
        return [*out, "--", *command]

    return argv


async def run_probe(
    spec: ProbeSpec, pod_ip: str, session: aiohttp.ClientSession, exec_argv: ExecArgv | None
) -> tuple[bool, str]:
    """Returns (success, message). 2xx/3xx is success for HTTP, like the kubelet."""
    try:
        if spec.kind == "http":
            url = f"{spec.scheme.lower()}://{pod_ip}:{spec.port}{spec.path}"
            async with session.get(
                url,
                headers=spec.headers,
                allow_redirects=False,
                ssl=False,
                timeout=aiohttp.ClientTimeout(total=spec.timeout),
            ) as resp:
                if 200 <= resp.status < 400:
                    return True, ""
                body = (await resp.text(errors="replace"))[:200]
                return False, f"HTTP probe failed with statuscode: {resp.status} {body}".strip()
        if spec.kind in ("tcp", "grpc"):
            _, writer = await asyncio.wait_for(asyncio.open_connection(pod_ip, spec.port), spec.timeout)
            writer.close()
            return True, ""
        if spec.kind == "exec":
            if exec_argv is None:
                return False, "container is not running"
            proc = await asyncio.create_subprocess_exec(
                *exec_argv(spec.command),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), spec.timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False, f"command timed out after {spec.timeout}s"
            if proc.returncode == 0:
                return True, ""
            return False, f"command exited {proc.returncode}: {out.decode(errors='replace')[:200]}"
    except TimeoutError:
        return False, f"{spec.kind} probe timed out after {spec.timeout}s"
    except (aiohttp.ClientError, OSError) as exc:
        return False, f"{spec.kind} probe failed: {exc}"
    return False, f"unknown probe kind {spec.kind}"


class ProbeState:
    """Consecutive-result bookkeeping for one probe."""

    def __init__(self, spec: ProbeSpec) -> None:
        self.spec = spec
        self.successes = 0
        self.failures = 0
        self.result: bool | None = None  # None until the threshold decides

    def record(self, ok: bool) -> bool | None:
        """Add a result; returns the new decided result when it changes, else None."""
        if ok:
            self.successes += 1
            self.failures = 0
            decided = True if self.successes >= self.spec.success_threshold else None
        else:
            self.failures += 1
            self.successes = 0
            decided = False if self.failures >= self.spec.failure_threshold else None
        if decided is not None and decided != self.result:
            self.result = decided
            return decided
        return None
