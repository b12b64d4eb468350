"""NetworkPolicy (ingress) for the local cluster's pods, as iptables rules in each pod's netns.

Pure functions: given every NetworkPolicy, Pod and Namespace, compute what may reach one pod and
render it as an iptables-restore input for the filter table of that pod's own network namespace.
A pod selected by no ingress policy accepts everything (Kubernetes semantics). Traffic from the
node itself (kubelet probes; processes on the host) is always allowed, as common CNIs do.
Egress rules are not enforced here (see docs/adr/0002).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


def selects(selector: JSON | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _labels(obj: JSON) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _policy_types(policy: JSON) -> list[str]:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return list(types)
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


@dataclass(frozen=True)
class Allow:
    """Accept TCP/UDP from ``source`` (a CIDR, or None for anywhere) to ``port`` (None: any)."""

    source: str | None
    protocol: str | None
    port: int | None
    end_port: int | None = None


def _resolve_port(port: int | str | None, pod: JSON) -> int | None:
    if port is None or isinstance(port, int) or str(port).isdigit():
        return None if port is None else int(port)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
    return -1  # a named port the pod does not have matches nothing


def _peer_sources(peer: JSON, policy_ns: str, pods: list[JSON], namespaces: dict[str, JSON]) -> list[str]:
    if "ipBlock" in peer:
        # the pod network is IPv4 only
        block = ipaddress.IPv4Network(peer["ipBlock"]["cidr"], strict=False)
        excepts = [ipaddress.IPv4Network(e, strict=False) for e in peer["ipBlock"].get("except") or []]
        nets = [block]
        for ex in excepts:
            nets = [piece for n in nets for piece in (n.address_exclude(ex) if ex.subnet_of(n) else [n])]
        return sorted(str(n) for n in nets)
    ns_selector = peer.get("namespaceSelector")
    pod_selector = peer.get("podSelector")
    if ns_selector is None:
        allowed_ns = {policy_ns}
    else:
        allowed_ns = {name for name, ns in namespaces.items() if selects(ns_selector, _labels(ns))}
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if ip and meta.get("namespace") in allowed_ns and selects(pod_selector, _labels(pod)):
            out.append(f"{ip}/32")
    return sorted(set(out))


def ingress_allows(
    target: JSON, policies: list[JSON], pods: list[JSON], namespaces: dict[str, JSON]
) -> list[Allow] | None:
    """What may reach ``target``; None when no ingress policy selects it (everything is allowed)."""
    ns = target["metadata"]["namespace"]
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == ns
        and "Ingress" in _policy_types(p)
        and selects((p.get("spec") or {}).get("podSelector") or {}, _labels(target))
    ]
    if not selecting:
        return None
    allows: list[Allow] = []
    for policy in selecting:
        for rule in (policy.get("spec") or {}).get("ingress") or []:
            peers = rule.get("from")
            sources: list[str | None] = [None]
            if peers:
                sources = [s for peer in peers for s in _peer_sources(peer, ns, pods, namespaces)]
            ports: list[tuple[str | None, int | None, int | None]] = [(None, None, None)]
            if rule.get("ports"):
                ports = []
                for p in rule["ports"]:
                    number = _resolve_port(p.get("port"), target)
                    if number == -1:
                        continue
                    ports.append((p.get("protocol", "TCP"), number, p.get("endPort")))
            allows += [Allow(src, proto, port, end) for src in sources for proto, port, end in ports]
    return sorted(set(allows), key=lambda a: (a.source or "", a.protocol or "", a.port or 0))


def render_filter(allows: list[Allow] | None, node_ip: str) -> str:
    """The filter table for a pod's netns: open when not isolated, else the allow-list."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    if allows is not None:
        lines += [
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            f"-A INPUT -s {node_ip}/32 -j ACCEPT",
        ]
        for a in allows:
            src = f" -s {a.source}" if a.source else ""
            if a.port is None and a.protocol is None:
                lines.append(f"-A INPUT{src} -j ACCEPT")
                continue
            proto = (a.protocol or "TCP").lower()
            ports = ""
            if a.port is not None:
                ports = f" --dport {a.port}:{a.end_port}" if a.end_port else f" --dport {a.port}"
            lines.append(f"-A INPUT{src} -p {proto} -m {proto}{ports} -j ACCEPT")
        # reject rather than drop: a refused connection fails fast and says why
        lines += [
            "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
            "-A INPUT -j REJECT --reject-with icmp-port-unreachable",
        ]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
