"""Print what an offline image build must find in its wheelhouse.

Reads pyproject.toml and prints one requirement per line: the build-system
requirements (pip builds the project inside the image) and the runtime
dependencies, with the torch pin turned into its CPU build (`torch==X+cpu`),
so `pip wheel -r` on the host cannot pick a multi-GB CUDA build.

    python3 scripts/lib/requirements.py [--pyproject FILE]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TORCH_PIN = re.compile(r"^\s*torch\s*==\s*([0-9][^\s;,+]*)(?:\+\w+)?\s*(;.*)?$")


def torch_version(requirements: list[str]) -> str:
    """The version of the exact `torch==X` pin; the images need one."""
    for req in requirements:
        match = TORCH_PIN.match(req)
        if match:
            return match.group(1)
    raise SystemExit("pyproject.toml has no exact torch pin (torch==X); the images need one")


def wheelhouse_requirements(pyproject: dict) -> list[str]:
    deps: list[str] = list(pyproject["project"].get("dependencies", []))
    build: list[str] = list(pyproject.get("build-system", {}).get("requires", []))
    version = torch_version(deps)
    out = [*build]
    for req in deps:
        out.append(f"torch=={version}+cpu" if TORCH_PIN.match(req) else req)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    data = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))
    print("\n".join(wheelhouse_requirements(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
