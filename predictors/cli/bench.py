"""`modelplane bench`: closed-loop load on local servers next to the raw runtimes."""

from __future__ import annotations

import argparse

from predictors.bench.settings import add_bench_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # predictors.bench.settings imports only the standard library; the load
    # generator (tritonclient, rich, runtimes) is imported when the command runs.
    add_bench_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from predictors.bench.run import run_bench

    return run_bench(args)
