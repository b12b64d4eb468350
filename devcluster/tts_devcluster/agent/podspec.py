"""Pure functions over pod specs: environment, identity, probes, status. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, others stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, value)


def field_value(pod: JSON, path: str, pod_ip: str, node_ip: str) -> str:
    """Resolve a downward-API ``fieldRef.fieldPath``."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": node_ip,
        "status.hostIPs": node_ip,
    }
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1], {})
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ValueError(f"unsupported fieldRef.fieldPath {path!r}")


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 0.001,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_quantity(q: str | int | float) -> float:
    if isinstance(q, int | float):
        return float(q)
    m = _QUANTITY.match(q.strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"bad quantity {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def resource_value(container: JSON, ref: JSON) -> str:
    """Resolve ``resourceFieldRef`` (limits.cpu, requests.memory, …) with its divisor."""
    kind, _, name = ref["resource"].partition(".")
    res = container.get("resources", {}).get(kind, {})
    value = parse_quantity(res.get(name, "0"))
    divisor = parse_quantity(ref.get("divisor", "1"))
    out = value / divisor
    # the kubelet rounds up to whole divisor units
    return str(int(out) if out == int(out) else int(out) + 1)


@dataclass(frozen=True)
class Identity:
    uid: int | None
    gid: int | None
    groups: tuple[int, ...]
    no_new_privs: bool
    read_only_root: bool
    run_as_non_root: bool


def identity(pod: JSON, container: JSON) -> Identity:
    """Effective user/group for a container: the container's securityContext over the pod's."""
    psc = pod.get("spec", {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    groups = list(psc.get("supplementalGroups") or [])
    if psc.get("fsGroup") is not None:
        groups.append(psc["fsGroup"])
    return Identity(
        uid=uid,
        gid=gid,
        groups=tuple(dict.fromkeys(groups)),
        no_new_privs=csc.get("allowPrivilegeEscalation") is False,
        read_only_root=bool(csc.get("readOnlyRootFilesystem")),
        run_as_non_root=bool(csc.get("runAsNonRoot", psc.get("runAsNonRoot", False))),
    )


def resolve_port(container: JSON, port: int | str) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports", []) or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"container {container.get('name')} has no port named {port!r}")


@dataclass
class ProbeSpec:
    kind: str  # http | tcp | exec | grpc
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    headers: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3


def probe_spec(container: JSON, probe: JSON | None) -> ProbeSpec | None:
    if not probe:
        return None
    common = {
        "initial_delay": probe.get("initialDelaySeconds", 0),
        "period": probe.get("periodSeconds", 10),
        "timeout": probe.get("timeoutSeconds", 1),
        "success_threshold": probe.get("successThreshold", 1),
        "failure_threshold": probe.get("failureThreshold", 3),
    }
    if "httpGet" in probe:
        h = probe["httpGet"]
        return ProbeSpec(
            kind="http",
            port=resolve_port(container, h["port"]),
            path=h.get("path", "/"),
            scheme=h.get("scheme", "HTTP"),
            headers={x["name"]: x["value"] for x in h.get("httpHeaders", []) or []},
            **common,
        )
    if "tcpSocket" in probe:
        return ProbeSpec(kind="tcp", port=resolve_port(container, probe["tcpSocket"]["port"]), **common)
    if "exec" in probe:
        return ProbeSpec(kind="exec", command=list(probe["exec"].get("command", [])), **common)
    if "grpc" in probe:
        return ProbeSpec(kind="grpc", port=int(probe["grpc"]["port"]), **common)
    raise ValueError("probe has no handler")


# --- status --------------------------------------------------------------------------------


def condition(
    ctype: str, ok: bool, now: str, previous: list[JSON], reason: str | None = None, message: str | None = None
) -> JSON:
    """A pod condition whose lastTransitionTime moves only when the status flips."""
    status = "True" if ok else "False"
    prev = next((c for c in previous if c.get("type") == ctype), None)
    since = (
        prev["lastTransitionTime"] if prev and prev.get("status") == status and prev.get("lastTransitionTime") else now
    )
    out: JSON = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not ok:
        out["reason"] = reason
    if message and not ok:
        out["message"] = message
    return out


def pod_phase(restart_policy: str, init_done: bool, states: list[tuple[JSON, int]]) -> str:
    """Pod phase from (container state, restart count) pairs, as the kubelet computes it."""
    if not init_done or not states:
        return "Pending"
    kinds = [next(iter(state), "waiting") for state, _ in states]
    if "running" in kinds:
        return "Running"
    if "waiting" in kinds:
        # waiting to be restarted after having run once keeps the pod Running
        return "Running" if any(count > 0 for _, count in states) else "Pending"
    codes = [state["terminated"].get("exitCode", 1) for state, _ in states]
    if restart_policy == "Always":
        return "Running"
    if all(c == 0 for c in codes):
        return "Succeeded"
    return "Failed" if restart_policy == "Never" else "Running"
