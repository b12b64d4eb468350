"""Start and stop the local cluster: the image registry, etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok (node lifecycle), the node agent (pods as
processes) and the hostPath volume provisioner (PVCs; ADR 0051).

Every step is idempotent: a component that already runs and answers is left alone, so
``make up`` after ``make up`` is quick.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import net, procs
from .layout import (
    AGENT_HEALTH_PORT,
    APISERVER_PORT,
    BRIDGE_IP,
    CONTROLLER_MANAGER_PORT,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    KUBERNETES_SERVICE_IP,
    POD_NETWORK,
    REGISTRY,
    SCHEDULER_PORT,
    SERVICE_CIDR,
    Layout,
    node_pod_cidr,
)
from .pki import Pki
from .provisioner import plan as provisioner_plan

# Images whose containers run as processes from the checkout instead of from the image (ADR 0040).
# The default names the CUDA inference image only: it is several GB of torch, `make test` does not
# build it (see docs/images.md), and the torch engines' tests run from the checkout's venv instead.
# KUBETTS_AGENT_PROCESS_IMAGES='' runs everything from images; '*' runs everything as processes.
PROCESS_IMAGES = os.environ.get("KUBETTS_AGENT_PROCESS_IMAGES", "*/kube-tts/inference:*-cuda")

COMPONENTS = (
    "registry",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "node-agent",
    "volume-provisioner",
)


def say(msg: str) -> None:
    print(f"\033[1m[devcluster]\033[0m {msg}", file=sys.stderr, flush=True)


class ClusterError(RuntimeError):
    pass


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, log_name: str | None = None, layout: Layout | None = None
) -> None:
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    last_note = t0
    while time.monotonic() < deadline:
        if check():
            return
        if log_name and layout and not procs.pid_of(layout, log_name):
            raise ClusterError(
                f"{log_name} exited while waiting for {what}; last log lines:\n"
                + procs.tail(procs.log_path(layout, log_name))
            )
        if time.monotonic() - last_note > 10:
            say(f"  still waiting for {what} ({time.monotonic() - t0:.0f}s)")
            last_note = time.monotonic()
        time.sleep(0.2)
    tail = procs.tail(procs.log_path(layout, log_name)) if (log_name and layout) else ""
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-tts", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "kube-tts", "context": {"cluster": "kube-tts", "user": user}}],
        "current-context": "kube-tts",
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)


def _https_ok(url: str, layout: Layout) -> bool:
    pki = Pki(layout.pki)
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.path("admin.crt")), str(pki.path("admin.key")))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def kubectl(layout: Layout, *args: str, input_: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        [layout.tool("kubectl"), "--kubeconfig", str(layout.kubeconfig()), *args],
        capture_output=True,
        text=True,
        input=input_,
    )
    if check and proc.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


class ControlPlane:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.pki = Pki(layout.pki)

    # --- steps ------------------------------------------------------------------------------

    def check_binaries(self) -> None:
        missing = [
            b
            for b in (
                "registry",
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok",
                "kubectl",
            )
            if not (self.layout.bin / b).exists()
        ]
        if missing:
            raise ClusterError(f"missing binaries {missing} in {self.layout.bin}: run `make build` first")

    def prepare(self) -> None:
        for d in (self.layout.state, self.layout.pki, self.layout.logs, self.layout.run, self.layout.pods):
            d.mkdir(parents=True, exist_ok=True)
        self.pki.ensure(
            apiserver_sans=[
                "127.0.0.1",
                BRIDGE_IP,
                KUBERNETES_SERVICE_IP,
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            kubelet_sans=[BRIDGE_IP, "127.0.0.1"],
        )
        p = self.pki.path
        for who, stem, user in (
            ("admin", "admin", "kubernetes-admin"),
            ("controller-manager", "controller-manager", "system:kube-controller-manager"),
            ("scheduler", "scheduler", "system:kube-scheduler"),
            ("kwok", "kwok", "kube-tts:kwok"),
            ("node-agent", "node-agent", "kube-tts:node-agent"),
            ("volume-provisioner", "volume-provisioner", provisioner_plan.USER),
        ):
            write_kubeconfig(
                self.layout.kubeconfig(who),
                self.layout.apiserver_url,
                self.pki.ca_cert,
                p(f"{stem}.crt"),
                p(f"{stem}.key"),
                user,
            )
        net.ensure_bridge()

    def registry_config(self) -> dict[str, Any]:
        """distribution's configuration: images on disk under .devcluster/registry, manifests
        deletable (``crane delete``, or the tests provoking ImagePullBackOff), loopback only."""
        return {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.layout.registry_data)},
                "delete": {"enabled": True},
                "redirect": {"disable": True},
            },
            # the secret signs upload state between requests; one registry, on loopback
            "http": {
                "addr": REGISTRY,
                "secret": "kube-tts-local-registry",
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }

    def start_registry(self) -> None:
        self.layout.registry_data.mkdir(parents=True, exist_ok=True)
        self.layout.run.mkdir(parents=True, exist_ok=True)
        config = self.layout.run / "registry.yml"
        config.write_text(yaml.safe_dump(self.registry_config(), sort_keys=False))
        procs.start(
            self.layout,
            "registry",
            [self.layout.tool("registry"), "serve", str(config)],
            # distribution exports traces over OTLP to localhost:4318 by default; there is no collector
            env={"OTEL_TRACES_EXPORTER": "none"},
        )
        wait_for(f"the image registry on {REGISTRY}", registry_ready, 30, "registry", self.layout)

    def start_etcd(self) -> None:
        self.layout.etcd_data.mkdir(parents=True, exist_ok=True, mode=0o700)
        procs.start(
            self.layout,
            "etcd",
            [
                self.layout.tool("etcd"),
                "--name=devcluster",
                f"--data-dir={self.layout.etcd_data}",
                f"--listen-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--advertise-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
                f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
                f"--initial-cluster=devcluster=http://127.0.0.1:{ETCD_PEER_PORT}",
                "--listen-metrics-urls=http://127.0.0.1:0",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
                "--unsafe-no-fsync",  # a throwaway dev store; fsync dominates apiserver latency here
            ],
        )
        wait_for("etcd", lambda: _http_ok(f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health"), 60, "etcd", self.layout)

    def apiserver_argv(self) -> list[str]:
        p = self.pki.path
        return [
            self.layout.tool("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--bind-address=0.0.0.0",
            f"--secure-port={APISERVER_PORT}",
            f"--advertise-address={BRIDGE_IP}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--client-ca-file={self.pki.ca_cert}",
            f"--tls-cert-file={p('apiserver.crt')}",
            f"--tls-private-key-file={p('apiserver.key')}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p('sa.pub')}",
            f"--service-account-signing-key-file={p('sa.key')}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={p('apiserver-kubelet-client.crt')}",
            f"--kubelet-client-key={p('apiserver-kubelet-client.key')}",
            f"--kubelet-certificate-authority={self.pki.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=false",
            "--profiling=false",
            "--event-ttl=2h",
            f"--cert-dir={self.layout.pki / 'apiserver-generated'}",
            "--v=1",
        ]

    def start_apiserver(self) -> None:
        procs.start(self.layout, "kube-apiserver", self.apiserver_argv())
        wait_for(
            "kube-apiserver /readyz",
            lambda: _https_ok(f"{self.layout.apiserver_url}/readyz", self.layout),
            180,
            "kube-apiserver",
            self.layout,
        )

    def start_controllers(self) -> None:
        p = self.pki.path
        kcm = str(self.layout.kubeconfig("controller-manager"))
        procs.start(
            self.layout,
            "kube-controller-manager",
            [
                self.layout.tool("kube-controller-manager"),
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                "--bind-address=127.0.0.1",
                f"--secure-port={CONTROLLER_MANAGER_PORT}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p('sa.key')}",
                f"--root-ca-file={self.pki.ca_cert}",
                f"--cluster-signing-cert-file={self.pki.ca_cert}",
                f"--cluster-signing-key-file={p('ca.key')}",
                "--allocate-node-cidrs=false",
                f"--cluster-cidr={POD_NETWORK}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                "--v=1",
            ],
        )
        sched = str(self.layout.kubeconfig("scheduler"))
        procs.start(
            self.layout,
            "kube-scheduler",
            [
                self.layout.tool("kube-scheduler"),
                f"--kubeconfig={sched}",
                f"--authentication-kubeconfig={sched}",
                f"--authorization-kubeconfig={sched}",
                "--bind-address=127.0.0.1",
                f"--secure-port={SCHEDULER_PORT}",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def apply_nodes(self) -> None:
        spec = yaml.safe_load((self.layout.config / "nodes.yaml").read_text())
        docs: list[dict[str, Any]] = []
        for node in spec:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": node["name"],
                        "labels": {
                            "kubernetes.io/hostname": node["name"],
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                            **node.get("labels", {}),
                        },
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    },
                    "spec": {
                        "podCIDR": node_pod_cidr(node["podSubnet"]),
                        "podCIDRs": [node_pod_cidr(node["podSubnet"])],
                        "taints": node.get("taints", []),
                    },
                    "status": {"capacity": node["capacity"], "allocatable": node["capacity"]},
                }
            )
        existing = set(kubectl(self.layout, "get", "nodes", "-o", "name", check=False).split())
        fresh = [d for d in docs if f"node/{d['metadata']['name']}" not in existing]
        if fresh:
            kubectl(
                self.layout,
                "create",
                "-f",
                "-",
                input_=json.dumps({"apiVersion": "v1", "kind": "List", "items": fresh}),
            )

    def start_kwok(self) -> None:
        procs.start(
            self.layout,
            "kwok",
            [
                self.layout.tool("kwok"),
                f"--kubeconfig={self.layout.kubeconfig('kwok')}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--config={self.layout.config / 'kwok-stages.yaml'}",
                f"--node-ip={BRIDGE_IP}",
                "--node-lease-duration-seconds=40",
            ],
        )

    def start_agent(self) -> None:
        procs.start(
            self.layout,
            "node-agent",
            [
                sys.executable,
                "-m",
                "tts_devcluster.agent",
                f"--kubeconfig={self.layout.kubeconfig('node-agent')}",
                f"--state-dir={self.layout.pods}",
                f"--pki-dir={self.layout.pki}",
                f"--path={self.layout.venv_bin}",
                f"--health-port={AGENT_HEALTH_PORT}",
                f"--process-images={PROCESS_IMAGES}",
            ],
            env={"PYTHONUNBUFFERED": "1"},
        )
        wait_for("node agent", lambda: _agent_healthy(), 60, "node-agent", self.layout)

    def start_provisioner(self) -> None:
        """The default StorageClass, the provisioner's RBAC, then the provisioner itself."""
        kubectl(
            self.layout,
            "apply",
            "-f",
            "-",
            input_=json.dumps({"apiVersion": "v1", "kind": "List", "items": provisioner_plan.cluster_objects()}),
        )
        procs.start(
            self.layout,
            "volume-provisioner",
            [
                sys.executable,
                "-m",
                "tts_devcluster.provisioner",
                f"--kubeconfig={self.layout.kubeconfig('volume-provisioner')}",
                f"--root={self.layout.volumes}",
            ],
            env={"PYTHONUNBUFFERED": "1"},
        )

    def wait_nodes_ready(self, timeout: float = 90) -> None:
        names = [n["name"] for n in yaml.safe_load((self.layout.config / "nodes.yaml").read_text())]

        def ready() -> bool:
            out = kubectl(self.layout, "get", "nodes", "-o", "json", check=False)
            if not out:
                return False
            status = {
                item["metadata"]["name"]: any(
                    c["type"] == "Ready" and c["status"] == "True" for c in item.get("status", {}).get("conditions", [])
                )
                for item in json.loads(out)["items"]
            }
            return all(status.get(n) for n in names)

        wait_for("nodes Ready", ready, timeout, "kwok", self.layout)

    def wait_default_serviceaccount(self) -> None:
        wait_for(
            "the default ServiceAccount (controller-manager up)",
            lambda: bool(
                kubectl(
                    self.layout, "get", "serviceaccount", "default", "-n", "default", "-o", "name", check=False
                ).strip()
            ),
            90,
            "kube-controller-manager",
            self.layout,
        )

    # --- entry points -----------------------------------------------------------------------

    def up(self) -> None:
        t0 = time.monotonic()
        self.check_binaries()
        say("preparing certificates, kubeconfigs and the pod bridge")
        self.prepare()
        say(f"starting the image registry on {REGISTRY}")
        self.start_registry()
        say("starting etcd")
        self.start_etcd()
        say("starting kube-apiserver")
        self.start_apiserver()
        say("starting kube-controller-manager and kube-scheduler")
        self.start_controllers()
        say("registering nodes; starting kwok and the node agent")
        self.apply_nodes()
        self.start_kwok()
        self.start_agent()
        say("starting the volume provisioner (default StorageClass kube-tts-local)")
        self.start_provisioner()
        self.wait_nodes_ready()
        self.wait_default_serviceaccount()
        say(f"cluster up in {time.monotonic() - t0:.1f}s — KUBECONFIG={self.layout.kubeconfig()}")

    def up_registry(self) -> None:
        """Only the image registry (``make images`` pushes to it before any cluster is up)."""
        if not (self.layout.bin / "registry").exists():
            raise ClusterError(f"no registry binary in {self.layout.bin}: run `make build` first")
        self.start_registry()
        say(f"image registry on {REGISTRY} (images under {self.layout.registry_data})")

    def down(self, wipe: bool = False) -> None:
        # the agent first, so it stops every pod process it started
        for name in reversed(COMPONENTS):
            if procs.stop(self.layout, name, timeout=30 if name == "node-agent" else 10):
                say(f"stopped {name}")
        net.remove_bridge()
        if wipe:
            import shutil

            shutil.rmtree(self.layout.state, ignore_errors=True)
            say(f"removed {self.layout.state}")

    def status(self) -> dict[str, bool]:
        return {name: procs.pid_of(self.layout, name) is not None for name in COMPONENTS}

    def restart(self, name: str) -> None:
        """Stop one component and start it again, waiting until it answers (recovery tests use this)."""
        start = {
            "registry": self.start_registry,
            "etcd": self.start_etcd,
            "kube-apiserver": self.start_apiserver,
            "kube-controller-manager": self.start_controllers,
            "kube-scheduler": self.start_controllers,
            "kwok": self.start_kwok,
            "node-agent": self.start_agent,
            "volume-provisioner": self.start_provisioner,
        }[name]
        procs.stop(self.layout, name, timeout=30 if name == "node-agent" else 10)
        start()


def registry_ready() -> bool:
    """The registry answers its API root (``GET /v2/`` is 200 without auth)."""
    return _http_ok(f"http://{REGISTRY}/v2/")


def _agent_healthy() -> bool:
    return _http_ok(f"http://127.0.0.1:{AGENT_HEALTH_PORT}/healthz")
