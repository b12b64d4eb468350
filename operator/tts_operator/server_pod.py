"""The containers of a server-engine pod (``engine: openai-compatible``, ADR 0047; pure).

The user's server image runs as the ``server`` container on its own port, with its probes on the
paths it declares, the GPU, the memory and the model volume (mounted at ``modelMountPath``). Beside
it the ``inference`` container, kube-tts's bridge (``python -m tts_inference.bridge`` from the
inference image), serves kube-tts's inference API on port 8000: the router talks to the bridge as
to any inference pod, and the bridge talks to the server over the pod's loopback, converting
formats, framing SSE and listing voices (ADR 0048).
"""

from __future__ import annotations

import json
from typing import Any

from tts_crds import names
from tts_crds.models import ServerSpec, TtsDeploymentSpec

from . import model_source

JSON = dict[str, Any]
# the bridge only relays and converts: a small, fixed share beside the server
BRIDGE_RESOURCES: JSON = {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "512Mi"}}


def bridge_config(server: ServerSpec) -> str:
    """What the bridge needs of the server spec, as the JSON of ``KUBETTS_SERVER``."""
    return json.dumps(server.model_dump(mode="json", by_alias=True))


def _probe(path: str, period: int, failures: int, timeout: int) -> JSON:
    return {
        "httpGet": {"path": path, "port": "server"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def _mounts(plan: model_source.ModelPlan, mount_path: str) -> list[JSON]:
    """The model volume where the server wants it (the plan mounts it at /models for built-in engines)."""
    out = []
    for mount in plan.mounts:
        moved = dict(mount)
        if mount.get("name") == model_source.MODEL_VOLUME:
            moved["mountPath"] = mount_path
        out.append(moved)
    return out


def server_container(name: str, spec: TtsDeploymentSpec, plan: model_source.ModelPlan, security: JSON) -> JSON:
    server = spec.server
    assert server is not None
    res = spec.resources
    limits: JSON = {"memory": res.memory}
    if res.gpu > 0:
        limits[res.gpu_resource_name] = res.gpu
    env = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "KUBETTS_DEPLOYMENT", "value": name},
        {"name": "KUBETTS_MODEL_URI", "value": spec.model.uri},
        {"name": "KUBETTS_MODEL_DIR", "value": _model_dir(plan, server)},
        *({"name": e.name, "value": e.value} for e in spec.env),
    ]
    out: JSON = {
        "name": "server",
        "image": server.image,
        "imagePullPolicy": "IfNotPresent",
        "args": list(server.args),
        "env": env,
        "ports": [{"name": "server", "containerPort": server.port, "protocol": "TCP"}],
        # a server may take minutes to load its model: the startup probe allows startupSeconds
        "startupProbe": _probe(server.paths.health, 1, server.startup_seconds, 2),
        "readinessProbe": _probe(server.paths.ready or server.paths.health, 1, 3, 2),
        "livenessProbe": _probe(server.paths.health, 10, 3, 5),
        "resources": {"requests": {"cpu": res.cpu, "memory": res.memory}, "limits": limits},
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *_mounts(plan, server.model_mount_path)],
    }
    if server.command:
        out["command"] = list(server.command)
    return out


def _model_dir(plan: model_source.ModelPlan, server: ServerSpec) -> str:
    """Where the server finds the model: its mount path for mounted models, the file:// path for baked ones."""
    for env in plan.env:
        if env["name"] == "KUBETTS_MODEL_DIR":
            value = str(env["value"])
            if value.startswith(model_source.MODEL_DIR):
                return server.model_mount_path + value.removeprefix(model_source.MODEL_DIR)
            return value
    return ""


def bridge_container(name: str, spec: TtsDeploymentSpec, image: str, security: JSON) -> JSON:
    server = spec.server
    assert server is not None
    http = {"port": "http"}
    return {
        "name": "inference",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "tts_inference.bridge"],
        "env": [
            {"name": "KUBETTS_ENGINE", "value": spec.engine.value},
            {"name": "KUBETTS_PORT", "value": str(names.INFERENCE_PORT)},
            {"name": "KUBETTS_DEPLOYMENT", "value": name},
            {"name": "KUBETTS_SERVER", "value": bridge_config(server)},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "ports": [{"name": "http", "containerPort": names.INFERENCE_PORT, "protocol": "TCP"}],
        # the bridge's /readyz asks the server's ready path: Ready means the server can speak
        "startupProbe": {"httpGet": {"path": "/healthz", **http}, "periodSeconds": 1, "failureThreshold": 60},
        "readinessProbe": {
            "httpGet": {"path": "/readyz", **http},
            "periodSeconds": 1,
            "failureThreshold": 2,
            "timeoutSeconds": 3,
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", **http}, "periodSeconds": 10, "failureThreshold": 3},
        "resources": BRIDGE_RESOURCES,
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
