"""The node agent runs containers from images, as a kubelet with a CRI runtime does (ADR 0040).

Images come from the local registry (`make images` pushes the platform's and its Python base);
test images are made from the base with crane (a new config over the same layers), so nothing
is built here.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import textwrap
import uuid

import pytest
from tts_devcluster.layout import REGISTRY, Layout

from tests.helpers import eventually

from .conftest import Kube, pod_ready, tts_deployment
from .test_devcluster import PYTHON, pod

INSPECT = textwrap.dedent("""
    import os, pathlib
    status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
    print("UID", os.getuid(), "GID", os.getgid())
    print("CAPEFF", status["CapEff"].strip(), "CAPBND", status["CapBnd"].strip())
    print("NONEWPRIVS", status["NoNewPrivs"].strip(), "SECCOMP", status["Seccomp"].strip())
    print("GREETING", os.environ.get("GREETING"), "PATH", os.environ["PATH"])
    try:
        pathlib.Path("/usr/touched").write_text("x"); print("ROOT writable")
    except OSError as exc:
        print("ROOT", exc.strerror)
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    print("UNSHARE", "allowed" if libc.unshare(0x04000000) == 0 else os.strerror(ctypes.get_errno()))
    print("PID1", open("/proc/1/cmdline").read().split(chr(0))[0])
""")


def crane(layout: Layout, *args: str) -> str:
    proc = subprocess.run([layout.tool("crane"), *args, "--insecure"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture
def test_image(layout: Layout) -> str:
    """The Python base with its own ENTRYPOINT, CMD, ENV and USER (a config change only)."""
    ref = f"{REGISTRY}/kube-tts-test/entry:{uuid.uuid4().hex[:8]}"
    # crane splits flag values at commas: the script travels base64-encoded
    script = f"exec(__import__('base64').b64decode('{base64.b64encode(INSPECT.encode()).decode()}'))"
    crane(
        layout,
        "mutate",
        PYTHON,
        "--entrypoint=python,-c",
        f"--cmd={script}",
        "--env=GREETING=from-the-image",
        "--user=65532:65532",
        "-t",
        ref,
    )
    return ref


def finished(p: dict) -> bool:
    return p["status"].get("phase") in ("Succeeded", "Failed")


def test_container_runs_from_its_image_with_the_pods_security_context(
    kube: Kube, namespace: str, layout: Layout, test_image: str
):
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    manifest = pod("img", [], restartPolicy="Never", container={"securityContext": restricted})
    del manifest["spec"]["containers"][0]["command"]  # the image's ENTRYPOINT and CMD run
    manifest["spec"]["containers"][0]["image"] = test_image
    kube.apply(manifest, namespace)
    done = kube.wait_pod(namespace, "img", finished, timeout=120, what="finished")
    logs = kube.run("logs", "-n", namespace, "img").stdout
    assert done["status"]["phase"] == "Succeeded", logs
    assert "UID 65532 GID 65532" in logs  # the image's USER
    assert "CAPEFF 0000000000000000 CAPBND 0000000000000000" in logs  # drop: [ALL]
    assert "NONEWPRIVS 1 SECCOMP 2" in logs  # allowPrivilegeEscalation: false, RuntimeDefault filter
    assert "GREETING from-the-image PATH /usr/local/bin" in logs  # the image's ENV
    assert "ROOT Read-only file system" in logs
    assert "UNSHARE Operation not permitted" in logs
    assert "PID1 python" in logs  # its own pid namespace

    status = done["status"]["containerStatuses"][0]
    digest = crane(layout, "digest", test_image)
    assert status["imageID"] == f"{test_image.rsplit(':', 1)[0]}@{digest}"
    assert status["containerID"].startswith("runc://")
    assert status["state"]["terminated"]["exitCode"] == 0
    reasons = [e["reason"] for e in kube.events(namespace, "img")]
    assert "Pulling" in reasons and "Pulled" in reasons and "Started" in reasons


def test_command_and_args_override_the_image_and_the_exit_code_and_message_come_back(
    kube: Kube, namespace: str, test_image: str
):
    script = "import sys; open('/dev/termination-log', 'w').write('bye from ' + sys.argv[1]); sys.exit(3)"
    manifest = pod("args", [], restartPolicy="Never", container={"image": test_image, "args": [script, "args"]})
    del manifest["spec"]["containers"][0]["command"]  # ENTRYPOINT (python -c) stays, CMD is replaced
    kube.apply(manifest, namespace)
    done = kube.wait_pod(namespace, "args", finished, timeout=120, what="finished")
    term = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term.get("message")) == (3, "bye from args"), term


def test_an_image_missing_from_the_registry_backs_off_with_the_reason(kube: Kube, namespace: str):
    missing = f"{REGISTRY}/kube-tts-test/nothing-here:{uuid.uuid4().hex[:8]}"
    kube.apply(pod("nopull", ["true"], container={"image": missing}), namespace)

    def waiting_reason(p: dict) -> str | None:
        for cs in p["status"].get("containerStatuses") or []:
            return (cs.get("state") or {}).get("waiting", {}).get("reason")
        return None

    kube.wait_pod(namespace, "nopull", lambda p: waiting_reason(p) == "ImagePullBackOff", timeout=60, what="backoff")
    described = kube.run("describe", "pod", "nopull", "-n", namespace).stdout
    assert "ImagePullBackOff" in described
    assert f'Failed to pull image "{missing}"' in described
    assert re.search(r"manifest unknown|not found|unknown", described, re.I), described
    status = kube.get("pod", "nopull", namespace)["status"]
    assert not pod_ready(kube.get("pod", "nopull", namespace))
    assert status["containerStatuses"][0]["restartCount"] == 0  # a pull failure is not a restart

    kube.apply(pod("never", ["true"], container={"image": missing, "imagePullPolicy": "Never"}), namespace)
    kube.wait_pod(
        namespace, "never", lambda p: waiting_reason(p) == "ErrImageNeverPull", timeout=60, what="ErrImageNeverPull"
    )


def test_a_tts_deployment_whose_image_was_deleted_says_so(kube: Kube, namespace: str, layout: Layout, router):
    """Delete an image from the registry, then create a TtsDeployment that needs it: the pod backs off
    pulling and the TtsDeployment's Ready condition names the image and the reason."""
    ref = f"{REGISTRY}/kube-tts-test/inference:{uuid.uuid4().hex[:8]}"
    crane(layout, "copy", PYTHON, ref)
    digest = crane(layout, "digest", ref)
    crane(layout, "delete", f"{ref.rsplit(':', 1)[0]}@{digest}")
    name = "gone"
    kube.apply(tts_deployment(name, image=ref, resources={"gpu": 0, "cpu": "100m", "memory": "256Mi"}), namespace)

    def ready_condition() -> dict | None:
        obj = kube.get("ttsdeployment", name, namespace)
        cond = next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
        return cond if cond and cond.get("reason") == "ImagePullFailed" else None

    cond = eventually(ready_condition, timeout=90, what="Ready=False ImagePullFailed")
    assert cond["status"] == "False"
    assert ref in cond["message"] and re.search("ErrImagePull|ImagePullBackOff", cond["message"]), cond
    pods = kube.list("pods", namespace, f"tts.kubetts.io/deployment={name}")
    described = kube.run("describe", "pod", pods[0]["metadata"]["name"], "-n", namespace).stdout
    assert "ImagePullBackOff" in described or "ErrImagePull" in described
    printed = kube.run("get", "ttsdeployment", name, "-n", namespace).stdout
    assert "ImagePullFailed" in printed, printed


def test_platform_components_run_from_the_registry_images(kube: Kube, router, layout: Layout):
    """`make up`'s promise: operator, router, MCP and Wyoming server pods carry digests from the local registry."""
    from tts_devcluster import platform

    for component in ("operator", "router", "mcp", "wyoming"):
        pods = platform.component_pods(layout, component)
        assert pods, component
        for p in pods:
            cs = p["status"]["containerStatuses"][0]
            assert cs["image"].startswith(f"{REGISTRY}/kube-tts/{component}:"), cs["image"]
            assert re.fullmatch(rf"{re.escape(REGISTRY)}/kube-tts/{component}@sha256:[0-9a-f]{{64}}", cs["imageID"])
            assert cs["containerID"].startswith("runc://") and cs["ready"]
    # and the values the chart was given pin exactly those digests
    got = platform.helm(layout, "get", "values", platform.RELEASE, "-n", platform.NAMESPACE, "-o", "json")
    values = json.loads(got)
    assert values["router"]["image"]["digest"] == platform.image_digest(layout, "router")
