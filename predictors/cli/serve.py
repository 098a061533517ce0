"""`modelplane serve`: every model of a store over V2 HTTP and gRPC."""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import sys
from pathlib import Path

from predictors.cli.common import refusable
from predictors.errors import Refused
from predictors.settings import ServeSettings, add_serve_arguments

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_serve_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def serve() -> int:
        from predictors.serving.grpc_servicer import PortInUse
        from predictors.serving.server import ModelplaneServer, build_models

        settings = ServeSettings.from_args(args)
        if settings.configure_logging:
            configure_logging(settings.log_level, settings.log_config_file)
        try:
            server = ModelplaneServer(settings, build_models(settings))
            server.start()
        except PortInUse as exc:
            print(f"modelplane serve: {exc}", file=sys.stderr)
            return 2
        return 0

    return refusable("serve", serve)


def configure_logging(level: str, config_file: Path | None) -> None:
    """Like KServe's configure_logging: a dictConfig from .json or .yaml, else fileConfig."""
    if config_file is None:
        logging.basicConfig(level=level, format=LOG_FORMAT)
        return
    try:
        if config_file.suffix == ".json":
            logging.config.dictConfig(json.loads(config_file.read_text()))
        elif config_file.suffix in (".yaml", ".yml"):
            import yaml

            logging.config.dictConfig(yaml.safe_load(config_file.read_text()))
        else:
            logging.config.fileConfig(config_file, disable_existing_loggers=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Refused(f"--log_config_file {config_file}: {exc}") from exc
