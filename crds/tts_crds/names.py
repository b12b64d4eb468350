"""Names every component agrees on: API group, kinds, labels, ports (see docs/architecture.md)."""

from __future__ import annotations

GROUP = "tts.kubetts.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DEPLOYMENT_KIND = "TtsDeployment"
DEPLOYMENT_PLURAL = "ttsdeployments"
VOICE_KIND = "TtsVoice"
VOICE_PLURAL = "ttsvoices"
CATEGORY = "tts"

# ports
INFERENCE_PORT = 8000
ROUTER_PORT = 8080
MCP_PORT = 8090
WYOMING_PORT = 10200  # the Wyoming protocol's customary TTS port (Home Assistant, wyoming-piper)

# labels on everything the operator makes
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
PROJECT = "kube-tts"
MANAGER = "kube-tts-operator"
COMPONENT_INFERENCE = "inference"

# Reference clips (voice cloning): sample rates outside this range carry no usable speech
# (a 3-sample "clip" at 1 Hz lasts 3 s) or are not real recordings; every component refuses them
REFERENCE_MIN_SAMPLE_RATE = 8_000
REFERENCE_MAX_SAMPLE_RATE = 192_000

# GPU scheduling
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TAINT_KEY = "nvidia.com/gpu"


def inference_labels(deployment: str) -> dict[str, str]:
    """Labels of an inference Deployment, its pods, Service and PDB."""
    return {
        LABEL_NAME: PROJECT,
        LABEL_COMPONENT: COMPONENT_INFERENCE,
        LABEL_INSTANCE: deployment,
        LABEL_MANAGED_BY: MANAGER,
        LABEL_DEPLOYMENT: deployment,
    }


def inference_selector(deployment: str) -> dict[str, str]:
    """The stable subset used as the pod selector (never changes for a deployment)."""
    return {LABEL_COMPONENT: COMPONENT_INFERENCE, LABEL_DEPLOYMENT: deployment}


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def child_name(deployment: str) -> str:
    """Name of the Deployment, Service and PDB made for a TtsDeployment."""
    return f"tts-{deployment}"
