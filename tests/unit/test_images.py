"""The Dockerfiles and the image tooling, read statically (no podman or Docker needed): every image
`make images` and `make kind-load` build names a stage that exists, installs an extra pyproject
defines, installs its dependencies before it copies any source, keeps no pip cache, carries the OCI
labels and runs as the non-root uid the chart and the operator's pod specs use. The images
themselves are checked in tests/integration/test_images.py."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from tts_devcluster import controlplane
from tts_devcluster.layout import REGISTRY, Layout

ROOT = Path(__file__).resolve().parents[2]
LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.licenses",
)
# what an image's dependency step may see: pyproject.toml and the script that lists an extra
DEPENDENCY_INPUTS = {"pyproject.toml", "images/extra_requirements.py"}


def images() -> list[tuple[str, str, str]]:
    text = (ROOT / "Makefile").read_text()
    (line,) = re.findall(r"^IMAGES := (.+)$", text, re.M)
    return [tuple(spec.split(":")) for spec in line.split()]  # type: ignore[misc]


IMAGES = images()
IDS = [i[0] for i in IMAGES]


def parse(dockerfile: Path) -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (what it is FROM, its instructions with continuation lines joined)."""
    out: dict[str, tuple[str, list[str]]] = {}
    current = None
    for instr in re.sub(r"\\\n\s*", " ", dockerfile.read_text()).splitlines():
        instr = instr.strip()
        if match := re.match(r"FROM (\S+) AS (\S+)", instr):
            current = match.group(2)
            out[current] = (match.group(1), [])
        elif current and instr and not instr.startswith("#"):
            out[current][1].append(instr)
    return out


def stages(dockerfile: Path) -> dict[str, list[str]]:
    return {name: steps for name, (_, steps) in parse(dockerfile).items()}


def chain(dockerfile: Path, target: str) -> list[str]:
    """The instructions that make ``target``: its ancestors' stages first, then its own."""
    parsed = parse(dockerfile)
    steps: list[str] = []
    stage: str | None = target
    while stage in parsed:
        parent, own = parsed[stage]
        steps = own + steps
        stage = parent
    return steps


def test_kind_load_builds_the_five_images():
    assert sorted(name for name, _, _ in IMAGES) == ["inference", "mcp", "operator", "router", "wyoming"]


@pytest.mark.parametrize(("name", "file", "target"), IMAGES, ids=IDS)
def test_each_image_target_installs_a_real_extra_and_runs_non_root(name, file, target):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    found = stages(ROOT / file)
    assert target in found, f"{file} has no stage {target!r}"
    steps = found[target]
    installed = re.findall(r"python extra_requirements\.py ([\w-]+) > requirements\.txt", " ".join(steps))
    assert installed and all(extra in extras for extra in installed), (target, installed)
    assert "USER 65532:65532" in steps, f"{target} does not drop to uid 65532"
    # nothing after USER switches back to root
    assert not [s for s in steps[steps.index("USER 65532:65532") :] if s.startswith("USER ") and "65532" not in s]
    assert any(step.startswith("CMD ") for step in steps), f"{target} has no CMD"


@pytest.mark.parametrize(("name", "file", "target"), IMAGES, ids=IDS)
def test_dependencies_install_before_any_source_is_copied(name, file, target):
    """A one-line code change must leave the dependency layers cached: only pyproject.toml (and the
    script reading it) reach the image before its `pip install -r`; kube-tts itself comes after,
    built in another stage (`COPY --from=app`) and installed without dependencies."""
    steps = chain(ROOT / file, target)
    deps = next(i for i, s in enumerate(steps) if "pip install --no-compile -r requirements.txt" in s)
    for step in steps[:deps]:
        if step.startswith(("COPY ", "ADD ")):
            assert not step.startswith("ADD "), step
            sources = step.split()[1:-1]
            assert set(sources) <= DEPENDENCY_INPUTS, f"{target}: {step!r} comes before the dependency install"
    own = [s for s in steps[deps:] if s.startswith(("COPY ", "ADD "))]
    # the weights assembler (standard library only, rarely changed) may come first: the baked models
    # stay cached across code changes too
    own = [s for s in own if s != "COPY inference_image/tts_inference/weights.py ./"]
    assert own == ["COPY --from=app /install /usr/local"], own
    app = stages(ROOT / file)["app"]
    assert any("pip install --no-deps --no-compile" in s and "--prefix=/install ." in s for s in app), app


@pytest.mark.parametrize(("name", "file", "target"), IMAGES, ids=IDS)
def test_no_pip_cache_and_a_package_list(name, file, target):
    steps = chain(ROOT / file, target)
    env = " ".join(s for s in steps if s.startswith("ENV "))
    assert "PIP_NO_CACHE_DIR=1" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert any("pip list --format=freeze > /usr/local/share/kube-tts/packages.txt" in s for s in steps)
    # the package list is written as root (before USER), from / (not the deleted /src)
    own = stages(ROOT / file)[target]
    freeze = next(i for i, s in enumerate(own) if "packages.txt" in s)
    assert own.index("WORKDIR /") < freeze < own.index("USER 65532:65532")


@pytest.mark.parametrize(("name", "file", "target"), IMAGES, ids=IDS)
def test_oci_labels(name, file, target):
    own = stages(ROOT / file)[target]
    labels = " ".join(s for s in own if s.startswith("LABEL "))
    for key in LABELS:
        assert f"{key}=" in labels, f"{target} lacks {key}"
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.revision="${REVISION}"' in labels
    # the version defaults to the chart's appVersion (a plain `docker build` labels it right too)
    app_version = yaml.safe_load((ROOT / "charts/kube-tts/Chart.yaml").read_text())["appVersion"]
    assert f"ARG VERSION={app_version}" in own
    # the ARGs come last, so a new commit (REVISION) changes only the label layer
    first_arg = min(i for i, s in enumerate(own) if s.startswith("ARG ") and ("VERSION" in s or "REVISION" in s))
    assert all(s.startswith(("ARG ", "LABEL ")) for s in own[first_arg:]), own[first_arg:]


def test_the_build_context_leaves_out_tests_and_local_state():
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"]
    assert lines[0] == "*", "the context is an allow-list"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert not {"tests", ".venv", ".devcluster", ".git", "docs", "bench"} & allowed
    # everything the Dockerfiles COPY from the context is allowed
    for file in {f for _, f, _ in IMAGES}:
        for step in re.sub(r"\\\n\s*", " ", (ROOT / file).read_text()).splitlines():
            if step.startswith("COPY ") and "--from=" not in step:
                for src in step.split()[1:-1]:
                    assert any(src == a or a.startswith(f"{src}/") or src.startswith(f"{a}/") for a in allowed), (
                        file,
                        src,
                    )


def _extra_requirements():
    spec = importlib.util.spec_from_file_location("extra_requirements", ROOT / "images/extra_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extra_requirements_resolve_extras_that_name_other_extras():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = _extra_requirements().requirements(pyproject, "inference-torch")
    assert not [r for r in reqs if r.startswith("kube-tts")]
    for expected in ("piper-tts==1.8.0", "torch>=2.5", "pydantic>=2.10,<3"):
        assert expected in reqs
    assert len(reqs) == len(set(reqs))
    # each component's list is its extra plus the project's own dependencies, nothing else
    api = _extra_requirements().requirements(pyproject, "api")
    assert api == pyproject["project"]["dependencies"] + [
        r for r in pyproject["project"]["optional-dependencies"]["api"] if r not in pyproject["project"]["dependencies"]
    ]
    with pytest.raises(SystemExit):
        _extra_requirements().requirements(pyproject, "no-such-extra")


def test_images_sh_lists_the_makefile_images_under_the_local_registry():
    out = subprocess.run(
        [str(ROOT / "devcluster/images.sh"), "--print"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KUBETTS_INSTANCE": os.environ.get("KUBETTS_INSTANCE", "0")},
    ).stdout.split()
    app_version = yaml.safe_load((ROOT / "charts/kube-tts/Chart.yaml").read_text())["appVersion"]
    assert out == [f"{REGISTRY}/kube-tts/{name}:{app_version}" for name, _, _ in IMAGES]
    script = (ROOT / "devcluster/images.sh").read_text()
    (specs,) = re.findall(r"^ALL=\((.+)\)$", script, re.M)
    assert [tuple(s.split(":")) for s in specs.split()] == IMAGES


def test_the_registry_keeps_images_on_disk_allows_delete_and_listens_on_loopback(tmp_path):
    layout = Layout(repo=tmp_path, state=tmp_path / "state", bin=tmp_path / "bin")
    cfg = controlplane.ControlPlane(layout).registry_config()
    assert cfg["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "state" / "registry")
    assert cfg["storage"]["delete"]["enabled"] is True
    assert cfg["http"]["addr"] == REGISTRY and REGISTRY.startswith("127.0.0.1:")
    # started first, stopped last (down stops COMPONENTS in reverse)
    assert controlplane.COMPONENTS[0] == "registry"


def test_build_sh_print_and_tool_selection():
    out = subprocess.run([str(ROOT / "devcluster/build.sh"), "--print"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("/bin")
    bad = subprocess.run([str(ROOT / "devcluster/build.sh"), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2
    script = (ROOT / "devcluster/build.sh").read_text()
    (default,) = re.findall(r"^tools=\((.+)\)$", script, re.M)
    # `make up` builds no test-only tool; `--with-test-tools` (and `make test-tools`) add helm-unittest
    assert "helm-unittest" not in default.split() and {"registry", "crane"} <= set(default.split())


@pytest.mark.parametrize("file", sorted({f for _, f, _ in IMAGES}))
def test_pip_is_told_about_a_build_ca_by_an_argument_never_a_file_in_the_image(file):
    """Behind a TLS-inspecting proxy pip needs the build host's CA bundle: `make images` mounts it
    over the base image's own and passes PIP_CERT. Every stage that runs pip declares that build
    argument first; nothing writes a pip.conf or copies a certificate."""
    text = (ROOT / file).read_text()
    assert "pip.conf" not in text and ".crt" not in text
    for stage, steps in stages(ROOT / file).items():
        pip = [i for i, s in enumerate(steps) if s.startswith("RUN ") and "pip install" in s]
        if pip:
            assert "ARG PIP_CERT" in steps[: pip[0]], f"{file} {stage}: pip runs before ARG PIP_CERT"


@pytest.mark.parametrize("file", sorted({f for _, f, _ in IMAGES}))
def test_every_step_that_installs_python_packages_compiles_them_to_hash_based_bytecode(file):
    """The root is read-only at run time, so what the image does not carry as .pyc is compiled again
    on every start (docs/images.md, "Bytecode"). A step that pip-installs into the image compiles in
    the same step (so the .pyc files share its layer), with hash-based files (no timestamps) and
    pip's own timestamp-based compile off; a --target install is scratch that the step deletes."""
    for stage, steps in stages(ROOT / file).items():
        for step in steps:
            if not step.startswith("RUN ") or "pip install" not in step:
                continue
            installs = [c for c in re.split(r"&&|;", step) if "pip install" in c and "--target" not in c]
            if not installs or all("setuptools" in c and "-r" not in c for c in installs):
                continue  # the app stage's build tool, which no final image copies
            assert all("--no-compile" in c for c in installs), f"{file} {stage}: {step}"
            compiles = re.findall(r"python -m compileall ([^&]+)", step)
            assert compiles, f"{file} {stage}: installs without compiling: {step}"
            assert all("--invalidation-mode unchecked-hash" in c for c in compiles), f"{file} {stage}: {step}"
            last_install = max(step.rfind(c) for c in installs)
            assert step.rfind("python -m compileall") > last_install, f"{file} {stage}: compiles before installing"
