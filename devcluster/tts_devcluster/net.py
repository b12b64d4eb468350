"""The host side of the pod network: a bridge, one network namespace per pod, service NAT.

See docs/adr/0002-devcluster-node-agent.md. Everything here shells out to iproute2 and
iptables, the same tools a CNI plugin and kube-proxy drive.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .layout import BRIDGE, BRIDGE_IP, IPTABLES_CHAIN, NETNS_PREFIX, POD_NETWORK

log = logging.getLogger(__name__)


class NetError(RuntimeError):
    pass


def _run(*argv: str, check: bool = True, input_: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input_)
    if check and proc.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _link_exists(name: str) -> bool:
    return _run("ip", "link", "show", name, check=False).returncode == 0


def ensure_bridge() -> None:
    """Create the pod bridge with the gateway address; allow routing for service NAT."""
    prefix = ipaddress.ip_network(POD_NETWORK).prefixlen
    if not _link_exists(BRIDGE):
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = _run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout
    if f"{BRIDGE_IP}/{prefix}" not in addrs:
        _run("ip", "addr", "add", f"{BRIDGE_IP}/{prefix}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    # bridged pod-to-pod replies must pass conntrack so service DNAT is undone on the way back
    # (kube-proxy relies on the same br_netfilter setting)
    Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("1")
    _ensure_nat_chains()


def remove_bridge() -> None:
    for ns in list_netns():
        delete_pod_netns(ns)
    if _link_exists(BRIDGE):
        _run("ip", "link", "del", BRIDGE, check=False)
    _remove_nat_chains()


def list_netns() -> list[str]:
    out = _run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NETNS_PREFIX)]


def netns_name(pod_uid: str) -> str:
    return f"{NETNS_PREFIX}{pod_uid.replace('-', '')[:12]}"


def netns_path(name: str) -> str:
    return f"/run/netns/{name}"


@dataclass(frozen=True)
class PodNetwork:
    netns: str
    ip: str


def pod_mac(ip: str) -> str:
    """The pod's MAC address, derived from its IP (OVN-Kubernetes' 0a:58 convention).

    Pod IPs are reused; with a random MAC per veth, every neighbour that had talked to the IP's last
    owner (another pod's netns: the router) would send to a MAC that is gone until its ARP entry
    expires — tens of seconds of connection timeouts. The same IP always has the same MAC.
    """
    octets = ipaddress.IPv4Address(ip).packed
    return "0a:58:" + ":".join(f"{b:02x}" for b in octets)


def create_pod_netns(pod_uid: str, ip: str) -> PodNetwork:
    """A fresh namespace with ``lo`` and ``eth0`` (ip/16, default route via the bridge)."""
    ns = netns_name(pod_uid)
    # interface names are limited to 15 characters
    digest = hashlib.sha1(pod_uid.encode(), usedforsecurity=False).hexdigest()[:8]
    host_if, pod_if = f"vkt{digest}", f"vkp{digest}"
    if ns in list_netns():
        delete_pod_netns(ns)
    prefix = ipaddress.ip_network(POD_NETWORK).prefixlen
    _run("ip", "netns", "add", ns)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if)
        _run("ip", "link", "set", pod_if, "netns", ns)
        _run("ip", "link", "set", host_if, "master", BRIDGE, "up")
        # a pod reaching itself through a service IP: the frame must leave by the port it came in
        _run("ip", "link", "set", host_if, "type", "bridge_slave", "hairpin", "on")
        inside = ("ip", "netns", "exec", ns, "ip")
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "link", "set", pod_if, "name", "eth0")
        _run(*inside, "link", "set", "eth0", "address", pod_mac(ip))
        _run(*inside, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")
        _run(*inside, "route", "add", "default", "via", BRIDGE_IP)
    except NetError:
        delete_pod_netns(ns)
        raise
    return PodNetwork(netns=ns, ip=ip)


def delete_pod_netns(ns: str) -> None:
    # deleting the namespace destroys eth0 and with it the host end of the veth pair
    _run("ip", "netns", "del", ns, check=False)


# --- Services: ClusterIP NAT, the part of kube-proxy this cluster needs -----------------------


@dataclass(frozen=True)
class ServiceRule:
    """Traffic to ``cluster_ip:port/protocol`` goes to one of ``endpoints`` (ip, port)."""

    cluster_ip: str
    port: int
    protocol: str
    endpoints: tuple[tuple[str, int], ...]


REJECT_CHAIN = f"{IPTABLES_CHAIN}-REJECT"
HAIRPIN_CHAIN = f"{IPTABLES_CHAIN}-HAIRPIN"


def _ensure_chain(table: str, chain: str, hooks: Iterable[str]) -> None:
    if _run("iptables", "-t", table, "-L", chain, "-n", check=False).returncode != 0:
        _run("iptables", "-t", table, "-N", chain)
    for hook in hooks:
        if _run("iptables", "-t", table, "-C", hook, "-j", chain, check=False).returncode != 0:
            _run("iptables", "-t", table, "-I", hook, "1", "-j", chain)


def _remove_chain(table: str, chain: str, hooks: Iterable[str]) -> None:
    for hook in hooks:
        while _run("iptables", "-t", table, "-D", hook, "-j", chain, check=False).returncode == 0:
            pass
    _run("iptables", "-t", table, "-F", chain, check=False)
    _run("iptables", "-t", table, "-X", chain, check=False)


def _ensure_nat_chains() -> None:
    _ensure_chain("nat", IPTABLES_CHAIN, ("PREROUTING", "OUTPUT"))
    _ensure_chain("nat", HAIRPIN_CHAIN, ("POSTROUTING",))
    _ensure_chain("filter", REJECT_CHAIN, ("INPUT", "FORWARD", "OUTPUT"))


def _remove_nat_chains() -> None:
    _remove_chain("nat", IPTABLES_CHAIN, ("PREROUTING", "OUTPUT"))
    _remove_chain("nat", HAIRPIN_CHAIN, ("POSTROUTING",))
    _remove_chain("filter", REJECT_CHAIN, ("INPUT", "FORWARD", "OUTPUT"))


def render_service_rules(rules: Iterable[ServiceRule]) -> str:
    """iptables-restore input that replaces the service chains atomically (pure, tested).

    A service with ready endpoints DNATs to one of them, chosen uniformly; a service without
    any is rejected at once (connection refused) instead of timing out, as kube-proxy does.
    Only a pod reaching *itself* through a service is masqueraded (the reply would otherwise
    never return through the NAT); every other connection keeps its source address, so
    NetworkPolicies see who is really calling.
    """
    nat = ["*nat", f":{IPTABLES_CHAIN} - [0:0]", f":{HAIRPIN_CHAIN} - [0:0]"]
    flt = ["*filter", f":{REJECT_CHAIN} - [0:0]"]
    endpoint_ips: set[str] = set()
    for rule in sorted(rules, key=lambda r: (r.cluster_ip, r.port, r.protocol)):
        proto = rule.protocol.lower()
        match = f"-d {rule.cluster_ip}/32 -p {proto} -m {proto} --dport {rule.port}"
        if not rule.endpoints:
            reject = "tcp-reset" if proto == "tcp" else "icmp-port-unreachable"
            flt.append(f"-A {REJECT_CHAIN} {match} -j REJECT --reject-with {reject}")
            continue
        # the i-th of n rules takes 1/(n-i) of the connections that reach it: uniform overall
        n = len(rule.endpoints)
        for i, (ip, port) in enumerate(sorted(rule.endpoints)):
            prob = "" if i == n - 1 else f" -m statistic --mode random --probability {1 / (n - i):.5f}"
            nat.append(f"-A {IPTABLES_CHAIN} {match}{prob} -j DNAT --to-destination {ip}:{port}")
            endpoint_ips.add(ip)
    nat += [f"-A {HAIRPIN_CHAIN} -s {ip}/32 -d {ip}/32 -j MASQUERADE" for ip in sorted(endpoint_ips)]
    return "\n".join([*nat, "COMMIT", *flt, "COMMIT"]) + "\n"


def apply_service_rules(rules: Iterable[ServiceRule]) -> None:
    _run("iptables-restore", "--noflush", input_=render_service_rules(rules))


def apply_pod_filter(netns: str, rules: str) -> None:
    """Replace the filter table inside a pod's own network namespace (NetworkPolicy)."""
    _run("ip", "netns", "exec", netns, "iptables-restore", input_=rules)
