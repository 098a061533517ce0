"""`modelplane overload`: a reliability benchmark of one server (overload, large bodies, RSS)."""

from __future__ import annotations

import argparse

from predictors.bench.overload import add_overload_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_overload_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from predictors.bench.overload import run_overload

    return run_overload(args)
