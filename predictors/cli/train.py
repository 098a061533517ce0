"""`modelplane train`: train a bundled recipe and register it in MLflow."""

from __future__ import annotations

import argparse

from predictors.cli.common import TRACKING_HELP, refusable
from predictors.training.datasets import FAMILIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", choices=sorted(FAMILIES), default="wine")
    parser.add_argument("--alias", help="registry alias for the new version, e.g. champion")
    parser.add_argument("--registered-name", help="default: mlflow-<family>")
    parser.add_argument("--epochs", type=int, help="default: the bundled recipe's")
    parser.add_argument("--lr", type=float, help="default: the bundled recipe's")
    parser.add_argument("--experiment", default="modelplane")
    parser.add_argument("--tracking-uri", help=TRACKING_HELP)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def train() -> int:
        from predictors.mlflow.train import train_and_register

        trained = train_and_register(
            family=args.family,
            alias=args.alias,
            registered_name=args.registered_name,
            epochs=args.epochs,
            learning_rate=args.lr,
            tracking_uri=args.tracking_uri,
            experiment=args.experiment,
        )
        alias = f" @{trained.alias}" if trained.alias else ""
        print(
            f"registered models:/{trained.registered_name}/{trained.version}{alias} "
            f"(run {trained.run_id}) held-out accuracy "
            f"{trained.metrics['heldout_accuracy']:.4f} in {trained.tracking_uri}"
        )
        return 0

    return refusable("train", train, extra="mlflow")
