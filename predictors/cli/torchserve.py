"""`modelplane torchserve package`: the store's TorchScript models as TorchServe MARs."""

from __future__ import annotations

import argparse
from pathlib import Path

from predictors.cli.common import refusable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="torchserve_command", required=True)
    package = commands.add_parser(
        "package", help="write config/config.properties + model-store/*.mar (KServe's layout)"
    )
    package.add_argument("--store", default="model-store")
    package.add_argument("--out", required=True, type=Path)
    package.add_argument(
        "--models", action="append", default=[], help="NAME or NAME:VERSION (repeat or a,b)"
    )
    package.add_argument("--served-name", help="TorchServe model name (one model only)")
    package.add_argument("--model-store-path", default="/mnt/models/model-store")
    package.add_argument("--force", action="store_true", help="replace a non-empty --out")
    package.set_defaults(run=run_package)


def run_package(args: argparse.Namespace) -> int:
    def write_package() -> int:
        from predictors.torchserve.package import package

        models = [m for item in args.models for m in item.split(",") if m]
        done = package(
            store=Path(args.store),
            out=args.out,
            models=models or None,
            served_name=args.served_name,
            model_store_path=args.model_store_path,
            force=args.force,
        )
        for item in done:
            print(f"{item.store_name}:{item.version} -> {item.mar} as {item.served_name}")
        print(f"config: {args.out / 'config' / 'config.properties'}")
        return 0

    return refusable("torchserve package", write_package, extra="torchserve")
