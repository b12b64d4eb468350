"""What a model URI means for the pod: volumes, mounts, an init container, environment (pure).

- ``package://dist``        the engine package is already in the image: nothing to mount.
- ``file:///path``          a directory already in the image (baked in); the engine reads it there.
- ``pvc://claim[/sub/dir]`` the claim is mounted read-only at /models.
- ``hf://org/repo[@rev]``   an init container fetches the snapshot into an emptyDir at /models,
                            which the engine then mounts read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tts_crds.models import ModelSource

JSON = dict[str, Any]
MODEL_DIR = "/models"
MODEL_VOLUME = "model"
HF_TOKEN_KEY = "HF_TOKEN"


@dataclass
class ModelPlan:
    env: list[JSON] = field(default_factory=list)
    volumes: list[JSON] = field(default_factory=list)
    mounts: list[JSON] = field(default_factory=list)
    init_containers: list[JSON] = field(default_factory=list)


@dataclass(frozen=True)
class HfRef:
    repo: str
    revision: str


def parse_hf(uri: str) -> HfRef:
    """``hf://org/repo@rev`` -> (org/repo, rev); the revision defaults to ``main``."""
    rest = uri.removeprefix("hf://")
    repo, _, revision = rest.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"{uri!r}: expected hf://<org>/<repo>[@<revision>]")
    return HfRef(repo, revision or "main")


def plan(source: ModelSource, image: str, security_context: JSON, hf_endpoint: str, cache_size: str) -> ModelPlan:
    scheme, _, rest = source.uri.partition("://")
    out = ModelPlan()
    if scheme == "package":
        return out
    if scheme == "file":
        out.env.append({"name": "KUBETTS_MODEL_DIR", "value": "/" + rest.lstrip("/")})
        return out
    if scheme == "pvc":
        claim, _, sub = rest.partition("/")
        out.volumes.append({"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        out.mounts.append({"name": MODEL_VOLUME, "mountPath": MODEL_DIR, "readOnly": True})
        out.env.append({"name": "KUBETTS_MODEL_DIR", "value": f"{MODEL_DIR}/{sub}".rstrip("/")})
        return out
    if scheme == "hf":
        ref = parse_hf(source.uri)
        out.volumes.append({"name": MODEL_VOLUME, "emptyDir": {"sizeLimit": cache_size}})
        out.mounts.append({"name": MODEL_VOLUME, "mountPath": MODEL_DIR, "readOnly": True})
        out.env.append({"name": "KUBETTS_MODEL_DIR", "value": MODEL_DIR})
        env: list[JSON] = [{"name": "HF_ENDPOINT", "value": hf_endpoint}, {"name": "HOME", "value": "/tmp"}]
        if source.secret_ref:
            secret = {"name": source.secret_ref.name, "key": HF_TOKEN_KEY}
            env.append({"name": HF_TOKEN_KEY, "valueFrom": {"secretKeyRef": secret}})
        out.init_containers.append(
            {
                "name": "fetch-model",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-m", "tts_inference.fetch"],
                "args": ["--repo", ref.repo, "--revision", ref.revision, "--dest", MODEL_DIR],
                "env": env,
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                "securityContext": security_context,
                "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": MODEL_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
            }
        )
        return out
    raise ValueError(f"unsupported model URI scheme {scheme!r}")
