"""kube-tts on the local cluster: CRDs, operator and router, the sample model, and the env file.

The operator and router run as local processes here (with the admin kubeconfig); the Helm chart
runs them as pods under their own service accounts.
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
from .layout import OPERATOR_HEALTH_PORT, ROUTER_PORT, Layout

COMPONENTS = ("operator", "router")
NAMESPACE = "kube-tts"
SAMPLE = "examples/ttsdeployment-piper.yaml"


def api_key_path(layout: Layout) -> Path:
    return layout.state / "api-key"


def admin_key_path(layout: Layout) -> Path:
    return layout.state / "admin-api-key"


def router_url() -> str:
    return f"http://127.0.0.1:{ROUTER_PORT}"


def ensure_api_key(layout: Layout, admin: bool = False) -> str:
    """The router's user key (or its admin key: voice uploads, wake/sleep), made on first use."""
    path = admin_key_path(layout) if admin else api_key_path(layout)
    if not path.exists():
        layout.state.mkdir(parents=True, exist_ok=True)
        path.write_text(("sk-kubetts-admin-" if admin else "sk-kubetts-") + secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def install_crds(layout: Layout) -> None:
    kubectl(layout, "apply", "--server-side", "--force-conflicts", "-f", str(layout.repo / "crds"))
    for crd in ("ttsdeployments.tts.kubetts.io", "ttsvoices.tts.kubetts.io"):
        kubectl(layout, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def ensure_namespace(layout: Layout) -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                # inference pods must pass the restricted Pod Security level
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }
    kubectl(layout, "apply", "-f", "-", input_=json.dumps(ns))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_components(layout: Layout) -> None:
    ensure_api_key(layout)
    ensure_api_key(layout, admin=True)
    env = {"KUBECONFIG": str(layout.kubeconfig()), "PYTHONUNBUFFERED": "1"}
    procs.start(
        layout,
        "operator",
        [sys.executable, "-m", "tts_operator"],
        env={
            **env,
            # the router runs outside the cluster here, so its metrics are a fixed URL
            "KUBETTS_ROUTER_METRICS_URLS": f"{router_url()}/metrics",
            "KUBETTS_AUTOSCALE_PERIOD_SECONDS": "2",
            "KUBETTS_LEASE_NAMESPACE": NAMESPACE,
            "KUBETTS_HEALTH_HOST": "127.0.0.1",
            "KUBETTS_HEALTH_PORT": str(OPERATOR_HEALTH_PORT),
        },
    )
    procs.start(
        layout,
        "router",
        [sys.executable, "-m", "tts_api"],
        env={
            **env,
            "KUBETTS_HOST": "127.0.0.1",
            "KUBETTS_PORT": str(ROUTER_PORT),
            "KUBETTS_NAMESPACE": NAMESPACE,
            "KUBETTS_API_KEYS_FILE": str(api_key_path(layout)),
            "KUBETTS_ADMIN_API_KEYS_FILE": str(admin_key_path(layout)),
        },
    )
    wait_for("router /readyz", lambda: _http_ok(f"{router_url()}/readyz"), 60, "router", layout)


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

    wait_for(f"TtsDeployment {name} Ready", ready, timeout, "operator", layout)
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
    say("starting the operator and the router")
    start_components(layout)
    write_env(layout, key)
    if sample:
        manifest = yaml.safe_load((layout.repo / SAMPLE).read_text())
        name = manifest["metadata"]["name"]
        say(f"applying the sample TtsDeployment {name} ({SAMPLE})")
        kubectl(layout, "apply", "-n", NAMESPACE, "-f", str(layout.repo / SAMPLE))
        waited = wait_ready(layout, name)
        size, seconds, took = speak_once(key, name)
        say(f"{name} Ready after {waited:.1f}s; spoke {seconds:.2f}s of audio ({size} bytes) in {took:.2f}s")
    say(f"platform up in {time.monotonic() - t0:.1f}s")
    model = "joe"
    print(f"""
kube-tts is running.
  router:      {router_url()}   (API docs: {router_url()}/docs)
  web UI:      {router_url()}/   (paste $KUBETTS_API_KEY; $KUBETTS_ADMIN_API_KEY for voices, wake, sleep)
  kubeconfig:  {layout.kubeconfig()}
  environment: source {layout.env_file.relative_to(layout.repo)}

Try it:
  source .devcluster/env
  curl -sS "$KUBETTS_URL/v1/audio/speech" -H "Authorization: Bearer $KUBETTS_API_KEY" \\
       -H 'Content-Type: application/json' \\
       -d '{{"model": "{model}", "input": "Hello from kube-tts!", "response_format": "wav"}}' -o hello.wav
  kubectl get ttsdeployments -n {NAMESPACE}
""")


def down(layout: Layout) -> None:
    for name in reversed(COMPONENTS):
        if procs.stop(layout, name):
            say(f"stopped {name}")


def status(layout: Layout) -> dict[str, bool]:
    return {name: procs.pid_of(layout, name) is not None for name in COMPONENTS}
