"""Where the local cluster keeps its files, and the fixed addresses it uses.

Everything the cluster writes lives under ``<repo>/.devcluster`` (git-ignored): certificates,
kubeconfigs, etcd data, process logs and pid files, pod sandboxes. Binaries come from the
version-keyed cache that ``devcluster/build.sh`` fills.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

# Several local clusters can run side by side (one per checkout, e.g. parallel work in git
# worktrees): KUBETTS_INSTANCE=N (0-9) shifts every address, port and host-network name.
INSTANCE = int(os.environ.get("KUBETTS_INSTANCE", "0"))
if not 0 <= INSTANCE <= 9:
    raise ValueError("KUBETTS_INSTANCE must be 0-9")

# Pod network: one Linux bridge on the host; every pod gets its own network namespace with a
# veth into it. The host side of the bridge is also where the apiserver and the node agent's
# kubelet API are reachable from pods.
BRIDGE = f"kubetts{INSTANCE}"
BRIDGE_IP = f"10.{244 + INSTANCE}.0.1"
POD_NETWORK = f"10.{244 + INSTANCE}.0.0/16"
SERVICE_CIDR = f"10.{96 + INSTANCE}.0.0/16"
KUBERNETES_SERVICE_IP = f"10.{96 + INSTANCE}.0.1"
CLUSTER_DOMAIN = "cluster.local"

APISERVER_PORT = 6443 + INSTANCE
ETCD_CLIENT_PORT = 2379 + 10 * INSTANCE
ETCD_PEER_PORT = ETCD_CLIENT_PORT + 1
KUBELET_PORT = 10250  # on BRIDGE_IP, so it does not collide between instances
AGENT_HEALTH_PORT = 10248 + 100 * INSTANCE
CONTROLLER_MANAGER_PORT = 10257 + 100 * INSTANCE
SCHEDULER_PORT = 10259 + 100 * INSTANCE
ROUTER_PORT = 8080 + INSTANCE
# the Wyoming server (Home Assistant), mapped to the host as the router is
WYOMING_PORT = 10200 + INSTANCE
OPERATOR_HEALTH_PORT = 9081 + INSTANCE
# the local OCI registry (loopback only: the node agent, on the host, pulls from it, as kind users
# push to a registry on localhost); image references name it as 127.0.0.1:<port>/kube-tts/<name>
REGISTRY_PORT = 5100 + INSTANCE
REGISTRY = f"127.0.0.1:{REGISTRY_PORT}"

# the name prefix of everything the cluster creates in the host's network stack
NETNS_PREFIX = f"kt{INSTANCE}-"
IPTABLES_CHAIN = f"KUBETTS{INSTANCE}-SERVICES"


def node_pod_cidr(index: int) -> str:
    """The /24 of the pod network that node number ``index`` (1, 2, …) hands out."""
    return f"10.{244 + INSTANCE}.{index}.0/24"


def repo_root() -> Path:
    env = os.environ.get("KUBETTS_REPO")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "devcluster").is_dir():
            return parent
    raise RuntimeError("cannot find the kube-tts repository root; set KUBETTS_REPO")


def cache_root() -> Path:
    return Path(os.environ.get("KUBETTS_CACHE", Path.home() / ".cache" / "kube-tts"))


@dataclass(frozen=True)
class Layout:
    repo: Path
    state: Path
    bin: Path

    @classmethod
    def default(cls) -> Layout:
        repo = repo_root()
        state = Path(os.environ.get("KUBETTS_STATE", repo / ".devcluster"))
        return cls(repo=repo, state=state, bin=cache_root() / "bin" / "current")

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def pods(self) -> Path:
        return self.state / "pods"

    @property
    def volumes(self) -> Path:
        """One directory per dynamically provisioned PersistentVolume (ADR 0051)."""
        return self.state / "volumes"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def registry_data(self) -> Path:
        """The local image registry's blobs and manifests (distribution's filesystem driver)."""
        return self.state / "registry"

    @property
    def env_file(self) -> Path:
        return self.state / "env"

    @property
    def config(self) -> Path:
        return Path(__file__).with_name("config")

    def kubeconfig(self, who: str = "admin") -> Path:
        return self.state / f"{who}.kubeconfig"

    def tool(self, name: str) -> str:
        """Absolute path of a cached binary, falling back to PATH for tools like ``ip``."""
        candidate = self.bin / name
        if candidate.exists():
            return str(candidate)
        found = shutil.which(name)
        if not found:
            raise FileNotFoundError(f"{name} not found in {self.bin} or PATH; run `make build`")
        return found

    @property
    def venv_bin(self) -> Path:
        return self.repo / ".venv" / "bin"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{APISERVER_PORT}"
