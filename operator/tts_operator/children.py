"""Desired child objects of a TtsDeployment (pure functions; unit-tested without a cluster).

Children have deterministic names (``tts-<name>``), the kube-tts labels and a controller owner
reference, so deleting the TtsDeployment garbage-collects them and the operator re-creates one
that was deleted by hand.
"""

from __future__ import annotations

from typing import Any

from tts_crds import names
from tts_crds.models import TtsDeploymentSpec, parse_spec
from tts_crds.objects import controller_reference

from . import model_source, server_pod
from .settings import OperatorSettings

JSON = dict[str, Any]

# Pods run as this non-root user; the inference image's Dockerfile creates it with the same id.
RUN_AS_USER = 65532


def deployment_spec(owner: JSON) -> TtsDeploymentSpec:
    """The one parse of a TtsDeployment's spec, for every handler; ``InvalidSpec`` names the field
    (the CRD schema rejects nearly all of this first; this covers what it cannot express)."""
    return parse_spec(TtsDeploymentSpec, owner.get("spec"))


def owner_reference(owner: JSON, kind: str = names.DEPLOYMENT_KIND) -> JSON:
    """The controller reference of a child of ``owner`` (a TtsDeployment, or a TtsJob with ``kind``)."""
    return controller_reference(owner, kind)


def child_metadata(owner: JSON) -> JSON:
    name = owner["metadata"]["name"]
    return {
        "name": names.child_name(name),
        "namespace": owner["metadata"]["namespace"],
        "labels": names.inference_labels(name),
        "ownerReferences": [owner_reference(owner)],
    }


def restricted_container_security() -> JSON:
    """What the `restricted` Pod Security level requires of a container, plus a read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security() -> JSON:
    """The pod-level half of the `restricted` level: the non-root user the kube-tts images create."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def inference_container(name: str, spec: TtsDeploymentSpec, image: str, plan: model_source.ModelPlan) -> JSON:
    http = {"port": "http"}
    res = spec.resources
    requests: JSON = {"cpu": res.cpu, "memory": res.memory}
    limits: JSON = {"memory": res.memory}
    if res.gpu > 0:
        limits[res.gpu_resource_name] = res.gpu
    env = [
        {"name": "KUBETTS_ENGINE", "value": spec.engine.value},
        {"name": "KUBETTS_MODEL_URI", "value": spec.model.uri},
        {"name": "KUBETTS_PORT", "value": str(names.INFERENCE_PORT)},
        {"name": "KUBETTS_DEPLOYMENT", "value": name},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
        # a model that cannot load ends the pod with the reason in its termination message
        {"name": "KUBETTS_EXIT_ON_LOAD_FAILURE", "value": "true"},
        *plan.env,
        *({"name": e.name, "value": e.value} for e in spec.env),
    ]
    return {
        "name": "inference",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "tts_inference"],
        "env": env,
        "ports": [{"name": "http", "containerPort": names.INFERENCE_PORT, "protocol": "TCP"}],
        # startup allows a long model load; readiness is the model being loaded and warmed. Both
        # look every second (the least Kubernetes allows): readiness probes only start once the
        # startup probe passed, so a slower startup probe delays every wake from zero by up to its
        # period (bench/scale_from_zero.py measured 2 s of it before; docs/benchmarks.md)
        "startupProbe": {
            "httpGet": {"path": "/healthz", **http},
            "periodSeconds": 1,
            "failureThreshold": 300,
            "timeoutSeconds": 2,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", **http},
            "periodSeconds": 1,
            "failureThreshold": 2,
            "timeoutSeconds": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", **http},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "resources": {"requests": requests, "limits": limits},
        "securityContext": restricted_container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *plan.mounts],
    }


def containers(name: str, spec: TtsDeploymentSpec, image: str, plan: model_source.ModelPlan) -> list[JSON]:
    """The inference container; with a server engine, the bridge and the user's server (ADR 0047)."""
    if spec.server is None:
        return [inference_container(name, spec, image, plan)]
    security = restricted_container_security()
    return [
        server_pod.bridge_container(name, spec, image, security),
        server_pod.server_container(name, spec, plan, security),
    ]


def pod_spec(name: str, spec: TtsDeploymentSpec, settings: OperatorSettings) -> JSON:
    image = spec.image or settings.inference_image
    plan = model_source.plan(
        spec.model, image, restricted_container_security(), settings.hf_endpoint, settings.model_cache_size
    )
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations]
    node_selector = dict(spec.node_selector)
    if spec.resources.gpu > 0:
        tolerations.append({"key": names.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
        if spec.resources.gpu_product:
            node_selector[names.GPU_PRODUCT_LABEL] = spec.resources.gpu_product
    out: JSON = {
        # inference pods never talk to the Kubernetes API
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": restricted_pod_security(),
        "initContainers": plan.init_containers,
        "containers": containers(name, spec, image, plan),
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}, *plan.volumes],
        "tolerations": tolerations,
        "nodeSelector": node_selector,
    }
    if spec.priority_class_name:
        out["priorityClassName"] = spec.priority_class_name
    return out


def deployment(owner: JSON, spec: TtsDeploymentSpec, settings: OperatorSettings) -> JSON:
    """The apps/v1 Deployment of inference pods for ``owner`` (a TtsDeployment object)."""
    name = owner["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(owner),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": names.inference_selector(name)},
            # never fewer ready pods than desired during a roll-out: models take time to load
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 900,
            "template": {
                "metadata": {"labels": names.inference_labels(name)},
                "spec": pod_spec(name, spec, settings),
            },
        },
    }


def service(owner: JSON) -> JSON:
    """ClusterIP Service in front of the inference pods (the router itself routes by pod IP)."""
    name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner),
        "spec": {
            "type": "ClusterIP",
            "selector": names.inference_selector(name),
            "ports": [{"name": "http", "port": names.INFERENCE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(owner: JSON, spec: TtsDeploymentSpec) -> JSON | None:
    """At most one pod evicted at a time, but only when there is more than one replica:
    a PDB over a single replica would block every node drain."""
    if spec.replicas <= 1:
        return None
    name = owner["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(owner),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": names.inference_selector(name)}},
    }
