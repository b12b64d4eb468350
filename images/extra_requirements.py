"""Print the requirements of pyproject.toml's dependencies plus one extra, one a line.

The image builds install these before they copy any source, so that a code change rebuilds only
the small layer holding kube-tts itself (installed with ``pip install --no-deps``). Extras that
name other extras of this project (``kube-tts[inference]``) are resolved here. Standard library
only: it runs on the bare base image.

    python extra_requirements.py [--pyproject PATH] EXTRA
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: dict, extra: str) -> list[str]:
    project = pyproject["project"]
    name = re.sub(r"[-_.]+", "-", project["name"]).lower()
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    self_ref = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\[([^\]]+)\]\s*$")
    out: list[str] = []
    seen: set[str] = set()

    def add(extra_name: str) -> None:
        if extra_name in seen:
            return
        if extra_name not in extras:
            raise SystemExit(f"pyproject.toml has no extra {extra_name!r}; one of: {', '.join(sorted(extras))}")
        seen.add(extra_name)
        for req in extras[extra_name]:
            match = self_ref.match(req)
            if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() == name:
                for other in match.group(2).split(","):
                    add(other.strip())
            elif req not in out:
                out.append(req)

    out.extend(req for req in project.get("dependencies", []) if req not in out)
    add(extra)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("extra")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    data = tomllib.loads(args.pyproject.read_text())
    sys.stdout.write("".join(f"{req}\n" for req in requirements(data, args.extra)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
