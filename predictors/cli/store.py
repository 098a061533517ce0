"""`modelplane store build|add|import|list|verify`: the model store on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from predictors.cli.common import TRACKING_HELP, refusable
from predictors.formats import FORMATS, exportable
from predictors.training.datasets import FAMILIES

#: what `store import --format both` means: the two formats of the bundled models
BOTH = ["onnx", "torchscript"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="store_command", required=True)

    build = commands.add_parser("build", help="retrain and re-export the bundled models")
    build.add_argument("--store", default="model-store")
    build.add_argument("--only", choices=sorted(FAMILIES), action="append")
    build.set_defaults(run=run_build)

    add = commands.add_parser(
        "add", help="import your own ONNX, TorchScript or torch.export (.pt2) file"
    )
    add.add_argument("--store", default="model-store")
    add.add_argument("--name", required=True)
    add.add_argument("--version")
    add.add_argument("--format", choices=list(FORMATS), help="default: from the file")
    add.add_argument(
        "--input-name", action="append", default=[], help="TorchScript, torch.export: per input"
    )
    add.add_argument(
        "--input-shape",
        action="append",
        default=[],
        help="TorchScript: per input, -1 for the batch axis, e.g. -1,1,8,8",
    )
    add.add_argument("--input-dtype", action="append", default=[], help="TorchScript: e.g. FP32")
    add.add_argument(
        "--output-name", action="append", default=[], help="TorchScript, torch.export: per output"
    )
    add.add_argument("--labels", help="comma-separated class labels")
    add.add_argument(
        "--reference-data",
        type=Path,
        help="training inputs to profile for drift monitoring: .npy (one input) or .npz "
        "keyed by input name, rows first",
    )
    add.add_argument("file", type=Path)
    add.set_defaults(run=run_add)

    imp = commands.add_parser("import", help="export a registered MLflow model into a store")
    imp.add_argument("uri", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    imp.add_argument("--store", default="model-store")
    imp.add_argument(
        "--format",
        choices=[*exportable(), "both"],
        default="both",
        help=f"default: both ({' and '.join(BOTH)})",
    )
    imp.add_argument("--name", help="store name prefix (default: the registered name)")
    imp.add_argument("--tracking-uri", help=TRACKING_HELP)
    imp.set_defaults(run=run_import)

    for name, text, run in (
        ("list", "show the models in a store", run_list),
        ("verify", "check checksums", run_verify),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--store", default="model-store")
        sub.set_defaults(run=run)


def run_build(args: argparse.Namespace) -> int:
    from predictors.training.build import build_store

    for meta in build_store(Path(args.store), args.only):
        print(
            f"{meta.name}:{meta.version} held-out accuracy {meta.metrics['heldout_accuracy']:.4f}"
        )
    return 0


def run_add(args: argparse.Namespace) -> int:
    def add() -> int:
        from predictors.model_inspect import Hints, metadata_for, parse_torch_inputs
        from predictors.model_store import add_model

        torch_inputs = parse_torch_inputs(args.input_name, args.input_shape, args.input_dtype)
        hints = Hints(torch_inputs, args.input_name, args.output_name)
        labels = args.labels.split(",") if args.labels else None
        meta = metadata_for(args.file, args.format, hints, labels)
        if args.reference_data is not None:
            from predictors.drift import build_profile, read_reference

            meta.drift_profile = build_profile(
                read_reference(args.reference_data, meta.inputs),
                meta.inputs,
                source=f"modelplane store add --reference-data {args.reference_data.name}",
            )
        target = add_model(Path(args.store), args.name, args.file, args.version, meta)
        print(f"added {args.name}:{meta.version} ({meta.format}) at {target}")
        for kind, tensors in (("input", meta.inputs), ("output", meta.outputs)):
            for t in tensors:
                print(f"  {kind} {t.name} {t.datatype} {list(t.shape)}")
        profile = meta.drift_profile
        for name, p in profile.inputs.items() if profile else ():
            print(f"  drift profile of {name}: {len(p.features)} {p.kind} features, {p.rows} rows")
        if profile is None:
            print("  no drift profile (--reference-data): input drift will not be measured")
        return 0

    return refusable("store add", add, changed="the store was not changed")


def run_import(args: argparse.Namespace) -> int:
    def import_() -> int:
        from predictors.mlflow.importer import import_model

        formats = BOTH if args.format == "both" else [args.format]
        store = Path(args.store)
        for item in import_model(args.uri, store, formats, args.name, args.tracking_uri):
            state = "imported" if item.changed else "already in the store, unchanged"
            print(f"{item.name}:{item.version} ({item.format}) {state}: {item.path}")
        return 0

    return refusable("store import", import_, extra="mlflow", changed="the store was not changed")


def _discover(store: str, command: str) -> list | None:
    """The store's models, or None after saying why there are none to show."""
    from predictors.model_store import StoreError, discover

    try:
        return discover(Path(store))
    except StoreError as exc:
        print(f"modelplane store {command}: {exc}", file=sys.stderr)
        return None


def run_list(args: argparse.Namespace) -> int:
    from predictors.metadata import MetadataError

    found = _discover(args.store, "list")
    if found is None:
        return 2
    print(f"{'NAME':<20} {'VERSION':<8} {'FORMAT':<12} {'INPUTS':<28} ACCURACY")
    for stored in found:
        try:
            meta = stored.read_metadata()
        except MetadataError as exc:
            print(f"{stored.name:<20} {stored.version:<8} {'?':<12} unreadable: {exc}")
            continue
        inputs = " ".join(f"{t.name}{list(t.shape)}" for t in meta.inputs)
        acc = meta.metrics.get("heldout_accuracy")
        print(
            f"{meta.name:<20} {meta.version:<8} {meta.format:<12} {inputs:<28} "
            f"{'' if acc is None else f'{acc:.4f}'}"
        )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from predictors.metadata import MetadataError
    from predictors.model_store import verify

    found = _discover(args.store, "verify")
    if found is None:
        return 2
    bad = 0
    for stored in found:
        try:
            problems = verify(stored.path, stored.read_metadata())
        except MetadataError as exc:
            problems = [str(exc)]
        status = "ok" if not problems else "FAILED: " + "; ".join(problems)
        bad += bool(problems)
        print(f"{stored.name}:{stored.version} {status}")
    return 1 if bad else 0
