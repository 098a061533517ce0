"""`modelplane serve`: every model of a store over V2 HTTP and gRPC."""

from __future__ import annotations

import argparse
import logging
import sys

from predictors.settings import ServeSettings, add_serve_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_serve_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = ServeSettings.from_args(args)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from predictors.model_store import StoreError
    from predictors.serving.server import ModelplaneServer, build_models

    try:
        server = ModelplaneServer(settings, build_models(settings))
    except (StoreError, ValueError) as exc:
        print(f"modelplane serve: {exc}", file=sys.stderr)
        return 2
    server.start()
    return 0
