"""kube-tts on the local cluster: CRDs, the Helm chart from the local registry's images, the sample
model, and the env file.

The operator, router, MCP and Wyoming servers run as pods from their images (``make images`` builds and pushes
them), installed by the same chart a platform team uses. A port map relays the router's Service to
``127.0.0.1:8080`` and the Wyoming server's to ``127.0.0.1:10200`` (as kind's ``extraPortMappings``
would; both plus KUBETTS_INSTANCE), so ``KUBETTS_URL`` and ``KUBETTS_WYOMING_URI`` stay fixed.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from . import procs
from .controlplane import ClusterError, kubectl, say, wait_for
from .layout import REGISTRY, ROUTER_PORT, WYOMING_PORT, Layout

COMPONENTS = ("router-port", "wyoming-port")
NAMESPACE = "kube-tts"
RELEASE = "kube-tts"
SAMPLE = "examples/ttsdeployment-piper.yaml"
# the sample transcription model (ADR 0041): at zero replicas until a request or a voice wakes it
TRANSCRIBER = "examples/ttsdeployment-whisper.yaml"
KEYS_SECRET = "kube-tts-dev-api-keys"  # noqa: S105 - a Secret's name
# (chart value prefix, image repository) of every image the chart runs
CHART_IMAGES = (
    ("operator", "operator"),
    ("router", "router"),
    ("mcp", "mcp"),
    ("wyoming", "wyoming"),
    ("operator.inferenceImage", "inference"),
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)


def api_key_path(layout: Layout) -> Path:
    return layout.state / "api-key"


def admin_key_path(layout: Layout) -> Path:
    return layout.state / "admin-api-key"


def router_url() -> str:
    return f"http://127.0.0.1:{ROUTER_PORT}"


def wyoming_uri() -> str:
    return f"tcp://127.0.0.1:{WYOMING_PORT}"


def ensure_api_key(layout: Layout, admin: bool = False) -> str:
    """The router's user key (or its admin key: voice uploads, wake/sleep), made on first use."""
    path = admin_key_path(layout) if admin else api_key_path(layout)
    if not path.exists():
        layout.state.mkdir(parents=True, exist_ok=True)
        path.write_text(("sk-kubetts-admin-" if admin else "sk-kubetts-") + secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def app_version(layout: Layout) -> str:
    return str(yaml.safe_load((layout.repo / "charts" / "kube-tts" / "Chart.yaml").read_text())["appVersion"])


def image_ref(layout: Layout, name: str, suffix: str = "") -> str:
    """The local registry's reference of a kube-tts image (``suffix``: e.g. ``-cuda``)."""
    return f"{REGISTRY}/kube-tts/{name}:{app_version(layout)}{suffix}"


def image_digest(layout: Layout, name: str) -> str:
    """The digest the local registry serves for ``name``'s tag; a clear error when it is not there."""
    tag = app_version(layout)
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/kube-tts/{name}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return str(resp.headers["Docker-Content-Digest"])
    except (urllib.error.URLError, OSError, KeyError) as exc:
        raise ClusterError(
            f"image {image_ref(layout, name)} is not in the local registry ({exc}); run `make images`"
        ) from exc


def install_crds(layout: Layout) -> None:
    kubectl(layout, "apply", "--server-side", "--force-conflicts", "-f", str(layout.repo / "crds"))
    for crd in ("ttsdeployments.tts.kubetts.io", "ttsvoices.tts.kubetts.io", "ttsjobs.tts.kubetts.io"):
        kubectl(layout, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def ensure_namespace(layout: Layout) -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                # every pod of the platform must pass the restricted Pod Security level
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }
    kubectl(layout, "apply", "-f", "-", input_=json.dumps(ns))


def ensure_keys_secret(layout: Layout) -> None:
    """The router's keys as the chart's ``apiKeys.existingSecret`` (the same keys .devcluster/env exports)."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": KEYS_SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"api-keys": ensure_api_key(layout), "admin-api-keys": ensure_api_key(layout, admin=True)},
    }
    kubectl(layout, "apply", "-f", "-", input_=json.dumps(secret))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def helm(layout: Layout, *args: str, timeout: float = 600) -> str:
    import subprocess

    proc = subprocess.run(
        [layout.tool("helm"), "--kubeconfig", str(layout.kubeconfig()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise ClusterError(f"helm {args[0]} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def chart_values(layout: Layout, keys: bool = True) -> list[str]:
    """``--set`` arguments: the local registry, each image pinned to its digest (the tag is the chart's
    appVersion), and with ``keys`` the Secret holding the keys that .devcluster/env exports."""
    out = [f"image.registry={REGISTRY}/kube-tts"]
    if keys:
        out.append(f"apiKeys.existingSecret={KEYS_SECRET}")
    for prefix, name in CHART_IMAGES:
        key = f"{prefix}.digest" if prefix.endswith("Image") else f"{prefix}.image.digest"
        out.append(f"{key}={image_digest(layout, name)}")
    return out


def start_components(layout: Layout) -> None:
    """``helm upgrade --install`` the chart (images from the local registry), then map the router's port."""
    ensure_namespace(layout)
    ensure_keys_secret(layout)
    args = ["upgrade", "--install", RELEASE, str(layout.repo / "charts" / "kube-tts"), "-n", NAMESPACE]
    args += ["--skip-crds", "-f", str(layout.config / "platform-values.yaml"), "--wait", "--timeout", "5m"]
    for value in chart_values(layout):
        args += ["--set", value]
    t0 = time.monotonic()
    helm(layout, *args)
    say(f"  helm upgrade --install {RELEASE}: {time.monotonic() - t0:.1f}s")
    map_port(layout, "router", ROUTER_PORT)
    wait_for("router /readyz", lambda: _http_ok(f"{router_url()}/readyz"), 60, "router-port", layout)
    map_port(layout, "wyoming", WYOMING_PORT)
    wait_for("the Wyoming port", lambda: _tcp_open(WYOMING_PORT), 60, "wyoming-port", layout)


def map_port(layout: Layout, component: str, port: int) -> None:
    """Relay ``127.0.0.1:port`` to the component's Service, as kind's extraPortMappings would."""
    svc = json.loads(kubectl(layout, "get", "service", f"{RELEASE}-{component}", "-n", NAMESPACE, "-o", "json"))
    target = f"{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
    procs.stop(layout, f"{component}-port")
    procs.start(
        layout,
        f"{component}-port",
        [sys.executable, "-m", "tts_devcluster.portmap", f"--listen=127.0.0.1:{port}", f"--to={target}"],
        env={"PYTHONUNBUFFERED": "1"},
    )


def _tcp_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def uninstall(layout: Layout) -> None:
    """Remove the platform's release (CRDs and TtsDeployments stay), e.g. for another installation."""
    for component in COMPONENTS:
        procs.stop(layout, component)
    kubectl(layout, "delete", "deployment", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}", check=False)
    import contextlib

    with contextlib.suppress(ClusterError):
        helm(layout, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "2m")


def component_pods(layout: Layout, component: str) -> list[dict]:
    out = kubectl(
        layout,
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}",
        "-o",
        "json",
    )
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def component_pid(layout: Layout, component: str) -> int | None:
    """The host pid of a platform component's main process (its container's init), or None."""
    from .agent.runtime import container_pid

    for pod in component_pods(layout, component):
        for cs in pod.get("status", {}).get("containerStatuses", []):
            if cs["name"] == component and "running" in cs.get("state", {}):
                pid = container_pid(layout.pods, cs.get("containerID", ""))
                if pid:
                    return pid
    return None


def wait_ready(layout: Layout, name: str, timeout: float = 300) -> float:
    """Wait for TtsDeployment ``name`` to be Ready, saying what happens meanwhile; returns seconds."""
    t0 = time.monotonic()
    last = ""

    def ready() -> bool:
        nonlocal last
        out = kubectl(layout, "get", "ttsdeployment", name, "-n", NAMESPACE, "-o", "json", check=False)
        if not out:
            return False
        obj = json.loads(out)
        cond = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
        pods = json.loads(
            kubectl(
                layout,
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                f"tts.kubetts.io/deployment={name}",
                "-o",
                "json",
                check=False,
            )
            or '{"items": []}'
        )["items"]
        where = ", ".join(
            f"{p['metadata']['name']} on {p['spec'].get('nodeName') or '?'}: "
            f"{p.get('status', {}).get('phase', 'Pending')}"
            for p in pods
        )
        note = f"{cond['reason'] if cond else 'Pending'} — {where or 'no pods yet'}"
        if note != last:
            say(f"  {name}: {note} ({time.monotonic() - t0:.1f}s)")
            last = note
        pod_ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for p in pods
            for c in p.get("status", {}).get("conditions", [])
        )
        return bool(cond and cond["status"] == "True" and pod_ready)

    wait_for(f"TtsDeployment {name} Ready", ready, timeout, "node-agent", layout)
    return time.monotonic() - t0


def speak_once(key: str, model: str) -> tuple[int, float, float]:
    """One request through the router; returns (bytes, seconds of audio, request seconds)."""
    body = json.dumps({"model": model, "input": "kube-tts is up and speaking.", "response_format": "wav"}).encode()
    req = urllib.request.Request(
        f"{router_url()}/v1/audio/speech",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            data = resp.read()
    except urllib.error.HTTPError as exc:
        raise ClusterError(f"router answered {exc.code}: {exc.read().decode(errors='replace')}") from exc
    elapsed = time.monotonic() - t0
    import io
    import wave

    with wave.open(io.BytesIO(data)) as w:
        # a streamed WAV's header cannot know its length (0xFFFFFFFF): count the samples that came
        frames = len(w.readframes(w.getnframes())) // (w.getsampwidth() * w.getnchannels())
        seconds = frames / w.getframerate()
    return len(data), seconds, elapsed


def write_env(layout: Layout, key: str) -> None:
    layout.env_file.write_text(
        f"export KUBECONFIG={layout.kubeconfig()}\n"
        f"export KUBETTS_URL={router_url()}\n"
        f"export KUBETTS_WYOMING_URI={wyoming_uri()}\n"
        f"export KUBETTS_API_KEY={key}\n"
        f"export KUBETTS_ADMIN_API_KEY={ensure_api_key(layout, admin=True)}\n"
        f"export PATH={layout.bin}:$PATH\n"
    )
    layout.env_file.chmod(0o600)


def up(layout: Layout, sample: bool = True) -> None:
    t0 = time.monotonic()
    key = ensure_api_key(layout)
    say("installing CRDs and the kube-tts namespace")
    install_crds(layout)
    ensure_namespace(layout)
    say(f"installing the chart ({RELEASE}: operator, router, MCP and Wyoming servers) from {REGISTRY}")
    start_components(layout)
    write_env(layout, key)
    if sample:
        manifest = yaml.safe_load((layout.repo / SAMPLE).read_text())
        name = manifest["metadata"]["name"]
        say(f"applying the sample TtsDeployment {name} ({SAMPLE}) and {TRANSCRIBER} (asleep until asked)")
        kubectl(layout, "apply", "-n", NAMESPACE, "-f", str(layout.repo / SAMPLE), "-f", str(layout.repo / TRANSCRIBER))
        waited = wait_ready(layout, name)
        size, seconds, took = speak_once(key, name)
        say(f"{name} Ready after {waited:.1f}s; spoke {seconds:.2f}s of audio ({size} bytes) in {took:.2f}s")
    say(f"platform up in {time.monotonic() - t0:.1f}s")
    model = "joe"
    print(f"""
kube-tts is running.
  router:      {router_url()}   (API docs: {router_url()}/docs)
  wyoming:     {wyoming_uri()}   (Home Assistant: Wyoming Protocol, host 127.0.0.1, port {WYOMING_PORT})
  web UI:      {router_url()}/   (paste $KUBETTS_API_KEY; $KUBETTS_ADMIN_API_KEY for voices, wake, sleep)
  kubeconfig:  {layout.kubeconfig()}
  environment: source {layout.env_file.relative_to(layout.repo)}

Try it:
  source .devcluster/env
  curl -sS "$KUBETTS_URL/v1/audio/speech" -H "Authorization: Bearer $KUBETTS_API_KEY" \\
       -H 'Content-Type: application/json' \\
       -d '{{"model": "{model}", "input": "Hello from kube-tts!", "response_format": "wav"}}' -o hello.wav
  curl -sS "$KUBETTS_URL/v1/audio/transcriptions" -H "Authorization: Bearer $KUBETTS_API_KEY" \\
       -F model=whisper -F file=@hello.wav        # wakes the whisper model from zero
  kubectl get ttsdeployments -n {NAMESPACE}
""")


def down(layout: Layout) -> None:
    """Stop what runs on the host (the port map); the platform's pods stop with the node agent."""
    for name in reversed(COMPONENTS):
        if procs.stop(layout, name):
            say(f"stopped {name}")


def status(layout: Layout) -> dict[str, bool]:
    return {name: procs.pid_of(layout, name) is not None for name in COMPONENTS}
