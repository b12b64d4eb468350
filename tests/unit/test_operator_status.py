from tts_operator import status as status_module
from tts_operator.status import analyse_pods


def deployment_status(*args, **kwargs):
    """The status patch body, as the operator sends it to the API."""
    return status_module.deployment_status(*args, **kwargs).patch()


OWNER = {"metadata": {"name": "joe", "namespace": "tts", "generation": 2}, "spec": {"replicas": 1}}
CHILD = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}}


def pod(name="p", ready=False, scheduled=None, init=None, containers=None, phase="Pending"):
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled:
        conds.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": scheduled})
    return {
        "metadata": {"name": name},
        "status": {
            "phase": phase,
            "conditions": conds,
            "initContainerStatuses": init or [],
            "containerStatuses": containers or [],
        },
    }


def cond(status, ctype):
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_insufficient_gpu_is_named():
    p = pod(scheduled="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    status = deployment_status(OWNER, CHILD, [p], at="t")
    ready, degraded = cond(status, "Ready"), cond(status, "Degraded")
    assert (ready["status"], ready["reason"]) == ("False", "InsufficientGPU")
    assert (degraded["status"], degraded["reason"]) == ("True", "InsufficientGPU")
    assert "Insufficient nvidia.com/gpu" in ready["message"]


def test_other_unschedulable_is_not_called_gpu():
    p = pod(scheduled="0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")
    assert cond(deployment_status(OWNER, CHILD, [p], at="t"), "Ready")["reason"] == "Unschedulable"


def test_crash_loop_fetching_and_loading():
    crash = {
        "name": "inference",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1}},
    }
    assert cond(deployment_status(OWNER, CHILD, [pod(containers=[crash])], at="t"), "Ready")["reason"] == "CrashLooping"
    fetch = {"name": "fetch-model", "state": {"running": {}}}
    assert cond(deployment_status(OWNER, CHILD, [pod(init=[fetch])], at="t"), "Ready")["reason"] == "ModelFetching"
    fetch_crash = {**crash, "name": "fetch-model"}
    s = deployment_status(OWNER, CHILD, [pod(init=[fetch_crash])], at="t")
    assert cond(s, "Ready")["reason"] == "ModelFetchFailed" and cond(s, "Degraded")["status"] == "True"
    loading = {"name": "inference", "state": {"running": {}}}
    s = deployment_status(OWNER, CHILD, [pod(containers=[loading], phase="Running")], at="t")
    assert cond(s, "Ready")["reason"] == "ModelLoading" and cond(s, "Degraded")["status"] == "False"


def test_serving_available_and_counts():
    s = deployment_status(OWNER, CHILD, [pod(ready=True, phase="Running")], at="t")
    assert cond(s, "Ready")["status"] == "True" and cond(s, "Available")["status"] == "True"
    assert s["replicaCounts"] == "1/1" and s["readyReplicas"] == 1 and s["observedGeneration"] == 2


def test_scaled_to_zero():
    owner = {**OWNER, "spec": {"replicas": 0}}
    child = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}}
    s = deployment_status(owner, child, [], at="t")
    assert cond(s, "Ready")["reason"] == "ScaledToZero"
    assert cond(s, "Available")["status"] == "True"
    assert cond(s, "Progressing")["reason"] == "Stable"
    assert s["replicaCounts"] == "0/0"


def test_rolling_out_is_progressing():
    child = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1}}
    s = deployment_status(OWNER, child, [pod(ready=True, phase="Running")], at="t")
    assert cond(s, "Progressing")["status"] == "True" and cond(s, "Progressing")["reason"] == "RollingOut"


def test_terminating_pods_are_not_counted():
    gone = pod(ready=True)
    gone["metadata"]["deletionTimestamp"] = "x"
    assert analyse_pods([gone], "nvidia.com/gpu").total == 0


def test_image_pull_failure_is_named_with_the_kubelets_reason():
    pulling = {
        "name": "inference",
        "image": "127.0.0.1:5100/kube-tts/inference:gone",
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'manifest unknown: tag "gone"'}},
    }
    s = deployment_status(OWNER, CHILD, [pod(containers=[pulling])], at="t")
    ready, degraded = cond(s, "Ready"), cond(s, "Degraded")
    assert (ready["status"], ready["reason"]) == ("False", "ImagePullFailed")
    assert degraded["status"] == "True"
    assert "ImagePullBackOff" in ready["message"] and "kube-tts/inference:gone" in ready["message"]
    assert 'manifest unknown: tag "gone"' in ready["message"]


def test_patch_body_has_camel_case_keys_and_no_unset_fields():
    s = deployment_status(OWNER, CHILD, [pod(ready=True, phase="Running")], at="t")
    assert set(s) == {
        "observedGeneration",
        "replicas",
        "readyReplicas",
        "replicaCounts",
        "selector",
        "url",
        "conditions",
    }
    assert cond(s, "Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "Serving",
        "message": "1 of 1 replica(s) ready",
        "observedGeneration": 2,
        "lastTransitionTime": "t",
    }


def test_a_spec_the_operator_cannot_apply_makes_ready_false_whatever_the_pods_do():
    blocked = ("InvalidSpec", "spec.resources.gpu: Input should be less than or equal to 16")
    s = deployment_status(OWNER, CHILD, [pod(ready=True, phase="Running")], at="t", blocked=blocked)
    assert (cond(s, "Ready")["status"], cond(s, "Ready")["reason"]) == ("False", "InvalidSpec")
    assert "spec.resources.gpu" in cond(s, "Ready")["message"]
    assert (cond(s, "Degraded")["status"], cond(s, "Degraded")["reason"]) == ("True", "InvalidSpec")
    assert s["readyReplicas"] == 1  # the counts still say what runs


def test_last_transition_time_moves_only_when_the_status_changes():
    first = deployment_status(OWNER, CHILD, [pod(ready=True, phase="Running")], at="t1")
    owner = {**OWNER, "status": first}
    again = deployment_status(owner, CHILD, [pod(ready=True, phase="Running")], at="t2")
    assert cond(again, "Ready")["lastTransitionTime"] == "t1"
    down = deployment_status(owner, CHILD, [pod(phase="Pending")], at="t3")
    assert cond(down, "Ready")["lastTransitionTime"] == "t3"


def test_ready_pod_ip_skips_pods_that_are_not_ready_or_have_no_ip():
    from tts_operator.status import ready_pod_ip

    waiting = pod(name="a")
    waiting["status"]["podIP"] = "10.0.0.1"
    no_ip = pod(name="b", ready=True)
    ready = pod(name="c", ready=True)
    ready["status"]["podIP"] = "10.0.0.3"
    assert ready_pod_ip([waiting, no_ip, ready]) == "10.0.0.3"
    assert ready_pod_ip([waiting, no_ip]) is None
