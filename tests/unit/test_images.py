"""The Dockerfiles, read statically (no Docker on these machines): every image `make kind-load`
builds names a stage that exists, installs an extra pyproject defines, and runs as the non-root
uid the chart and the operator's pod specs use."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def images() -> list[tuple[str, str, str]]:
    text = (ROOT / "Makefile").read_text()
    (line,) = re.findall(r"^IMAGES := (.+)$", text, re.M)
    return [tuple(spec.split(":")) for spec in line.split()]  # type: ignore[misc]


def stages(dockerfile: Path) -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    out: dict[str, list[str]] = {}
    current = None
    for instr in re.sub(r"\\\n\s*", " ", dockerfile.read_text()).splitlines():
        instr = instr.strip()
        if match := re.match(r"FROM \S+ AS (\S+)", instr):
            current = match.group(1)
            out[current] = []
        elif current and instr and not instr.startswith("#"):
            out[current].append(instr)
    return out


def test_kind_load_builds_the_four_images():
    assert sorted(name for name, _, _ in images()) == ["inference", "mcp", "operator", "router"]


@pytest.mark.parametrize(("name", "file", "target"), images(), ids=[i[0] for i in images()])
def test_each_image_target_installs_a_real_extra_and_runs_non_root(name, file, target):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    found = stages(ROOT / file)
    assert target in found, f"{file} has no stage {target!r}"
    steps = found[target]
    installed = re.findall(r"pip install --no-compile '\.\[([\w-]+)\]'", " ".join(steps))
    assert installed and all(extra in extras for extra in installed), (target, installed)
    assert "USER 65532:65532" in steps, f"{target} does not drop to uid 65532"
    assert any(step.startswith("CMD ") for step in steps), f"{target} has no CMD"
