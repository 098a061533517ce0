"""The one reader of pyproject.toml's torch pin, and what an offline image build installs.

    python3 scripts/lib/requirements.py [--pyproject FILE]          CPU wheelhouse requirements
    python3 scripts/lib/requirements.py --gpu [--pyproject FILE]    GPU wheelhouse requirements
    python3 scripts/lib/requirements.py --extras mlflow             CPU, plus extras (trainer image)
    python3 scripts/lib/requirements.py --torch-version             the pin, e.g. 2.13.0

pyproject.toml's exact `torch==X` dependency is the only place the torch
version is written; scripts/setup-dev, scripts/build-images and the image
builds get it from here. Needs only the standard library (tomllib, Python
>= 3.11), so a fresh machine's system python3 can run it before any venv exists.

The requirement lists hold the build-system requirements (pip builds the
project inside the image) and the runtime dependencies:
- CPU: torch as its CPU build (`torch==X+cpu`), so `pip wheel -r` on the host
  cannot pick a multi-GB CUDA build.
- GPU: torch as the plain PyPI build (`torch===X`: `===` matches the version
  string exactly, so a local `X+cpu` wheel a machine's pip may know of is never
  taken), and the `gpu` extra (onnxruntime-gpu) in place of onnxruntime: both
  wheels install the same `onnxruntime` module. The exact CUDA stack comes from
  docker/gpu-constraints.txt.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

TORCH_PIN = re.compile(r"^\s*torch\s*==\s*([0-9][^\s;,+]*)(?:\+\w+)?\s*(;.*)?$")
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def torch_version(requirements: list[str]) -> str:
    """The version of the exact `torch==X` pin; the images need one, and only one."""
    pins = [m.group(1) for m in map(TORCH_PIN.match, requirements) if m]
    if len(pins) != 1:
        raise SystemExit(
            f"pyproject.toml must pin torch exactly once (torch==X); found {len(pins)} pins"
        )
    return pins[0]


def project_name(requirement: str) -> str:
    match = NAME.match(requirement)
    if not match:
        raise SystemExit(f"cannot read the project name of requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def wheelhouse_requirements(
    pyproject: dict, gpu: bool = False, extras: tuple[str, ...] = ()
) -> list[str]:
    deps: list[str] = list(pyproject["project"].get("dependencies", []))
    build: list[str] = list(pyproject.get("build-system", {}).get("requires", []))
    version = torch_version(deps)
    out = [*build]
    for req in deps:
        if TORCH_PIN.match(req):
            out.append(f"torch==={version}" if gpu else f"torch=={version}+cpu")
        elif gpu and project_name(req) == "onnxruntime":
            continue
        else:
            out.append(req)
    if gpu:
        extra = pyproject["project"].get("optional-dependencies", {}).get("gpu", [])
        if not any(project_name(r) == "onnxruntime-gpu" for r in extra):
            raise SystemExit("pyproject.toml's `gpu` extra must name onnxruntime-gpu")
        out.extend(extra)
    optional = pyproject["project"].get("optional-dependencies", {})
    for name in extras:
        if name not in optional:
            raise SystemExit(f"pyproject.toml has no extra {name!r} (it has {', '.join(optional)})")
        out.extend(optional[name])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Inside an image build this file is copied alone, so --pyproject is given there.
    parser.add_argument("--pyproject", type=Path, help="default: the repository's")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--torch-version", action="store_true", help="print the torch pin only")
    what.add_argument("--gpu", action="store_true", help="requirements of the GPU image")
    parser.add_argument(
        "--extras", default="", help="comma-separated extras of the project to add (CPU image)"
    )
    args = parser.parse_args(argv)
    pyproject = args.pyproject or Path(__file__).resolve().parents[2] / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    if args.torch_version:
        print(torch_version(list(data["project"].get("dependencies", []))))
    else:
        extras = tuple(e for e in args.extras.split(",") if e)
        print("\n".join(wheelhouse_requirements(data, gpu=args.gpu, extras=extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
