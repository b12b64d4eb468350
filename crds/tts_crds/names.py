"""Names every component agrees on: API group, kinds, labels, ports (see docs/architecture.md)."""

from __future__ import annotations

GROUP = "tts.kubetts.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DEPLOYMENT_KIND = "TtsDeployment"
DEPLOYMENT_PLURAL = "ttsdeployments"
VOICE_KIND = "TtsVoice"
VOICE_PLURAL = "ttsvoices"
JOB_KIND = "TtsJob"
JOB_PLURAL = "ttsjobs"
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
COMPONENT_RENDERER = "renderer"
LABEL_JOB = f"{GROUP}/job"
# the renderer's plan: a ConfigMap's binaryData key holding the gzip of tts_crds.plan.Plan's JSON
PLAN_KEY = "plan.json.gz"
# where a renderer pod finds its plan (the plan ConfigMap) and where the jobs claim is mounted in the
# renderer, operator and router pods (ADR 0050); a job's files are under <JOBS_MOUNT_PATH>/<plan dir>
PLAN_MOUNT_PATH = "/etc/kube-tts/plan"
JOBS_MOUNT_PATH = "/var/lib/kube-tts/jobs"
# the renderer's container, named in the Job's podFailurePolicy
RENDERER_CONTAINER = "render"
# the renderer's exit code when the router refused the work (ADR 0050): the Job fails at once
RENDER_REFUSED_EXIT_CODE = 2
# an uploaded text: the data key of the ConfigMap ``job_text_name(job)`` that ``spec.textFrom`` names
TEXT_KEY = "text"

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
    return _owned_labels(COMPONENT_INFERENCE, deployment, LABEL_DEPLOYMENT)


def _owned_labels(component: str, owner: str, owner_label: str) -> dict[str, str]:
    """The labels on everything the operator makes for one custom resource named ``owner``."""
    return {
        LABEL_NAME: PROJECT,
        LABEL_COMPONENT: component,
        LABEL_INSTANCE: owner,
        LABEL_MANAGED_BY: MANAGER,
        owner_label: owner,
    }


def inference_selector(deployment: str) -> dict[str, str]:
    """The stable subset used as the pod selector (never changes for a deployment)."""
    return {LABEL_COMPONENT: COMPONENT_INFERENCE, LABEL_DEPLOYMENT: deployment}


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def child_name(deployment: str) -> str:
    """Name of the Deployment, Service and PDB made for a TtsDeployment."""
    return f"tts-{deployment}"


def job_child_name(job: str) -> str:
    """Name of the batch/v1 Job that renders a TtsJob."""
    return f"ttsjob-{job}"


def job_plan_name(job: str) -> str:
    """Name of the ConfigMap holding a TtsJob's plan (key :data:`PLAN_KEY`)."""
    return f"{job_child_name(job)}-plan"


def job_text_name(job: str) -> str:
    """Name of the ConfigMap the router stores a long uploaded text in (``spec.textFrom``)."""
    return f"{job_child_name(job)}-text"


def renderer_labels(job: str) -> dict[str, str]:
    """Labels of everything made for a TtsJob: its plan ConfigMap, its Job and the Job's pods."""
    return _owned_labels(COMPONENT_RENDERER, job, LABEL_JOB)
