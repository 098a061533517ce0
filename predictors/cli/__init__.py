"""The `modelplane` command: one module per command, each with `add_arguments` and `run`.

Commands import what they need when they run, so `modelplane --help` and
`modelplane store list` start fast, and optional extras (mlflow,
torchserve, tritonclient for the bench) are needed only by their commands.
"""

from __future__ import annotations

import argparse
import sys

from predictors.cli import bench, canary, overload, serve, store, torchserve, train

# (name, module, help): each module adds its own arguments and sets `run`.
COMMANDS = [
    ("serve", serve, "serve a model store over V2 HTTP and gRPC"),
    ("store", store, "build, add, import, list and verify model stores"),
    ("bench", bench, "load-test local servers (gRPC, HTTP) against the raw runtimes"),
    ("overload", overload, "a server under overload, large bodies and a soak: what holds"),
    ("train", train, "train a bundled recipe, register it in MLflow"),
    ("canary-values", canary, "Helm values for a champion/challenger canary from MLflow aliases"),
    ("torchserve", torchserve, "TorchServe: package models as MAR archives"),
]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="modelplane", description="Serve models, and build, import, list and verify stores."
    )
    commands = root.add_subparsers(dest="command", required=True)
    for name, module, text in COMMANDS:
        sub = commands.add_parser(name, help=text, description=text)
        module.add_arguments(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
