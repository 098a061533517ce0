"""`modelplane canary-values`: Helm values for a champion/challenger canary from MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path

from predictors.cli.common import TRACKING_HELP, refusable
from predictors.formats import exportable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--format", choices=exportable(), default="onnx")
    parser.add_argument("--percent", type=int, default=10, help="challenger traffic share")
    parser.add_argument("--stage", choices=["canary", "champion", "promote"], default="canary")
    parser.add_argument("--storage-uri-prefix", default="pvc://modelplane-model-store")
    parser.add_argument("--champion-alias", default="champion")
    parser.add_argument("--challenger-alias", default="challenger")
    parser.add_argument("--name", help="store name prefix (default: the registered name)")
    parser.add_argument("--store", type=Path, help="check that both versions were imported here")
    parser.add_argument("--out", default="-", help="values file to write (default: stdout)")
    parser.add_argument("--tracking-uri", help=TRACKING_HELP)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def write_values() -> int:
        from predictors.mlflow.canary import canary_values, dump_values

        values, header = canary_values(
            model=args.model,
            fmt=args.format,
            percent=args.percent,
            stage=args.stage,
            storage_uri_prefix=args.storage_uri_prefix,
            champion_alias=args.champion_alias,
            challenger_alias=args.challenger_alias,
            store_name=args.name,
            store=args.store,
            tracking_uri=args.tracking_uri,
        )
        text = dump_values(values, header)
        if args.out == "-":
            print(text, end="")
        else:
            Path(args.out).write_text(text)
            print(f"wrote {args.out}")
        return 0

    return refusable("canary-values", write_values, extra="mlflow")
