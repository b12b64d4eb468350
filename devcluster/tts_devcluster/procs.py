"""Tiny daemon supervisor: start a long-running process detached, find it again, stop it.

Each daemon gets a pid file under ``.devcluster/run`` and a log under ``.devcluster/logs``;
it runs in its own session so stopping it stops its children too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .layout import Layout


def _pidfile(layout: Layout, name: str) -> Path:
    return layout.run / f"{name}.pid"


def _started_at(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), None if it is
    gone or a zombie. A pid and its start time name one process: a recycled pid has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return None if fields[0] == "Z" else fields[19]


def pid_of(layout: Layout, name: str) -> int | None:
    try:
        pid_text, _, started = _pidfile(layout, name).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    actual = _started_at(pid)
    # gone, a zombie, or the pid now belongs to another process (which stop() must never signal,
    # e.g. a daemon of another cluster instance on this machine)
    if actual is None or (started and actual != started):
        return None
    return pid


def start(
    layout: Layout,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` as daemon ``name`` unless it already runs; returns its pid."""
    existing = pid_of(layout, name)
    if existing:
        return existing
    layout.run.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    log_path = layout.logs / f"{name}.log"
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    _pidfile(layout, name).write_text(f"{proc.pid} {_started_at(proc.pid) or ''}".strip())
    return proc.pid


def stop(layout: Layout, name: str, timeout: float = 15.0) -> bool:
    """SIGTERM the daemon's process group, then SIGKILL after ``timeout``. True if it ran."""
    pid = pid_of(layout, name)
    if pid is None:
        _pidfile(layout, name).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_of(layout, name):
        time.sleep(0.1)
    if pid_of(layout, name):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _pidfile(layout, name).unlink(missing_ok=True)
    return True


def log_path(layout: Layout, name: str) -> Path:
    return layout.logs / f"{name}.log"


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes()[-64 * 1024 :]
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
