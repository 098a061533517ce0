"""The `modelplane` command: serve models, and build, import, list and verify stores."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from predictors.settings import add_serve_arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelplane", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve a model store over V2 HTTP and gRPC")
    add_serve_arguments(serve)

    store = commands.add_parser("store", help="build, import, list and verify model stores")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    build = store_commands.add_parser("build", help="retrain and re-export the bundled models")
    build.add_argument("--store", default="model-store")
    build.add_argument("--only", choices=["digits", "wine"], action="append")

    add = store_commands.add_parser(
        "add", help="import your own ONNX, TorchScript or torch.export (.pt2) file"
    )
    add.add_argument("--store", default="model-store")
    add.add_argument("--name", required=True)
    add.add_argument("--version")
    add.add_argument(
        "--format", choices=["onnx", "torchscript", "torch_export"], help="default: from the file"
    )
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
    add.add_argument("file", type=Path)

    for name, text in (("list", "show the models in a store"), ("verify", "check checksums")):
        sub = store_commands.add_parser(name, help=text)
        sub.add_argument("--store", default="model-store")
    _add_registry_commands(commands, store_commands)

    bench = commands.add_parser(
        "bench", help="load-test local servers (gRPC, HTTP) against the raw runtimes"
    )
    # bench.py imports only the standard library at module level; the load
    # generator (tritonclient, rich, runtimes) is imported when the command runs.
    from predictors.bench import add_bench_arguments

    add_bench_arguments(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # KServe parses sys.argv when imported; it must not see (or reject) ours.
    sys.argv = sys.argv[:1]
    if args.command == "serve":
        return _serve(args)
    if args.command in ("train", "canary-values", "torchserve") or (
        getattr(args, "store_command", None) == "import"
    ):
        return _registry_command(args)
    if args.command == "bench":
        return _bench(args)
    return {"build": _build, "add": _add, "list": _list, "verify": _verify}[args.store_command](
        args
    )


def _serve(args: argparse.Namespace) -> int:
    from predictors.settings import ServeSettings

    settings = ServeSettings.from_args(args)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from predictors.model_store import StoreError
    from predictors.server import ModelplaneServer, build_models

    try:
        server = ModelplaneServer(settings, build_models(settings))
    except (StoreError, ValueError) as exc:
        print(f"modelplane serve: {exc}", file=sys.stderr)
        return 2
    server.start()
    return 0


def _bench(args: argparse.Namespace) -> int:
    # Never imports kserve: its protobufs clash with tritonclient's (see bench.py).
    from predictors.bench import run_bench

    return run_bench(args)


def _build(args: argparse.Namespace) -> int:
    from predictors.training.build import build_store

    for meta in build_store(Path(args.store), args.only):
        print(
            f"{meta.name}:{meta.version} held-out accuracy {meta.metrics['heldout_accuracy']:.4f}"
        )
    return 0


def _add(args: argparse.Namespace) -> int:
    from predictors.model_inspect import InspectError, metadata_for
    from predictors.model_store import StoreError, add_model

    try:
        torch_inputs = _torch_inputs(args)
        meta = metadata_for(
            args.file,
            args.format,
            torch_inputs,
            args.output_name,
            args.labels.split(",") if args.labels else None,
            args.input_name,
        )
        target = add_model(Path(args.store), args.name, args.file, args.version, meta)
    except (InspectError, StoreError) as exc:
        print(f"modelplane store add: {exc}; the store was not changed", file=sys.stderr)
        return 2
    print(f"added {args.name}:{meta.version} ({meta.format}) at {target}")
    for kind, tensors in (("input", meta.inputs), ("output", meta.outputs)):
        for t in tensors:
            print(f"  {kind} {t.name} {t.datatype} {list(t.shape)}")
    return 0


def _torch_inputs(args: argparse.Namespace) -> list:
    from predictors.model_inspect import InspectError, TorchInput

    shapes = args.input_shape
    if not shapes:
        return []
    names = args.input_name or [f"input__{i}" for i in range(len(shapes))]
    dtypes = args.input_dtype or ["FP32"] * len(shapes)
    if not len(names) == len(dtypes) == len(shapes):
        raise InspectError("give --input-name and --input-dtype once per --input-shape")
    inputs = []
    for name, dtype, shape in zip(names, dtypes, shapes, strict=True):
        try:
            dims = tuple(int(d) for d in shape.split(","))
        except ValueError as exc:
            raise InspectError(f"--input-shape {shape!r}: use integers like -1,1,8,8") from exc
        inputs.append(TorchInput(name, dtype.upper(), dims))
    return inputs


def _discover(store: str, command: str) -> list | None:
    """The store's models, or None after saying why there are none to show."""
    from predictors.model_store import StoreError, discover

    try:
        return discover(Path(store))
    except StoreError as exc:
        print(f"modelplane store {command}: {exc}", file=sys.stderr)
        return None


def _list(args: argparse.Namespace) -> int:
    from predictors.metadata import MetadataError

    found = _discover(args.store, "list")
    if found is None:
        return 2
    print(f"{'NAME':<20} {'VERSION':<8} {'FORMAT':<12} {'INPUTS':<28} ACCURACY")
    for stored in found:
        try:
            meta = stored.metadata()
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


def _verify(args: argparse.Namespace) -> int:
    from predictors.metadata import MetadataError
    from predictors.model_store import verify

    found = _discover(args.store, "verify")
    if found is None:
        return 2
    bad = 0
    for stored in found:
        try:
            problems = verify(stored.path, stored.metadata())
        except MetadataError as exc:
            problems = [str(exc)]
        status = "ok" if not problems else "FAILED: " + "; ".join(problems)
        bad += bool(problems)
        print(f"{stored.name}:{stored.version} {status}")
    return 1 if bad else 0


def _add_registry_commands(
    commands: argparse._SubParsersAction, store_commands: argparse._SubParsersAction
) -> None:
    """MLflow (train, store import, canary-values) and TorchServe packaging."""
    tracking = {"help": "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else .work/mlflow)"}
    train = commands.add_parser("train", help="train a bundled recipe, register it in MLflow")
    train.add_argument("--family", choices=["digits", "wine"], default="wine")
    train.add_argument("--alias", help="registry alias for the new version, e.g. champion")
    train.add_argument("--registered-name", help="default: mlflow-<family>")
    train.add_argument("--epochs", type=int, help="default: the bundled recipe's")
    train.add_argument("--lr", type=float, help="default: the bundled recipe's")
    train.add_argument("--experiment", default="modelplane")
    train.add_argument("--tracking-uri", **tracking)

    imp = store_commands.add_parser("import", help="export a registered MLflow model into a store")
    imp.add_argument("uri", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    imp.add_argument("--store", default="model-store")
    imp.add_argument(
        "--format", choices=["onnx", "torchscript", "both"], default="both", help="default: both"
    )
    imp.add_argument("--name", help="store name prefix (default: the registered name)")
    imp.add_argument("--tracking-uri", **tracking)

    canary = commands.add_parser(
        "canary-values", help="Helm values for a champion/challenger canary from MLflow aliases"
    )
    canary.add_argument("--model", required=True, help="registered model name")
    canary.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    canary.add_argument("--percent", type=int, default=10, help="challenger traffic share")
    canary.add_argument("--stage", choices=["canary", "champion", "promote"], default="canary")
    canary.add_argument("--storage-uri-prefix", default="pvc://modelplane-model-store")
    canary.add_argument("--champion-alias", default="champion")
    canary.add_argument("--challenger-alias", default="challenger")
    canary.add_argument("--name", help="store name prefix (default: the registered name)")
    canary.add_argument("--store", type=Path, help="check that both versions were imported here")
    canary.add_argument("--out", default="-", help="values file to write (default: stdout)")
    canary.add_argument("--tracking-uri", **tracking)

    ts = commands.add_parser("torchserve", help="TorchServe: package models as MAR archives")
    ts_commands = ts.add_subparsers(dest="torchserve_command", required=True)
    package = ts_commands.add_parser(
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


def _registry_command(args: argparse.Namespace) -> int:
    # mlflow and torch-model-archiver are optional extras: imported only here.
    command = getattr(args, "store_command", None) if args.command == "store" else args.command
    try:
        if command == "torchserve":
            from predictors.torchserve.package import PackageError, package

            try:
                models = [m for item in args.models for m in item.split(",") if m]
                done = package(
                    Path(args.store),
                    args.out,
                    models or None,
                    args.served_name,
                    args.model_store_path,
                    args.force,
                )
            except PackageError as exc:
                print(f"modelplane torchserve package: {exc}", file=sys.stderr)
                return 2
            for item in done:
                print(f"{item.store_name}:{item.version} -> {item.mar} as {item.served_name}")
            print(f"config: {args.out / 'config' / 'config.properties'}")
            return 0
        from predictors import mlflow_registry as registry
    except ImportError as exc:
        print(
            f"modelplane {command}: {exc}; install the extras: "
            "pip install -e '.[mlflow,torchserve]'",
            file=sys.stderr,
        )
        return 2
    try:
        if command == "train":
            trained = registry.train_and_register(
                args.family,
                args.alias,
                args.registered_name,
                args.epochs,
                args.lr,
                args.tracking_uri,
                args.experiment,
            )
            alias = f" @{trained.alias}" if trained.alias else ""
            print(
                f"registered models:/{trained.registered_name}/{trained.version}{alias} "
                f"(run {trained.run_id}) held-out accuracy "
                f"{trained.metrics['heldout_accuracy']:.4f} in {trained.tracking_uri}"
            )
            return 0
        if command == "import":
            formats = ["onnx", "torchscript"] if args.format == "both" else [args.format]
            for item in registry.import_model(
                args.uri, Path(args.store), formats, args.name, args.tracking_uri
            ):
                state = "imported" if item.changed else "already in the store, unchanged"
                print(f"{item.name}:{item.version} ({item.format}) {state}: {item.path}")
            return 0
        values, header = registry.canary_values(
            args.model,
            args.format,
            args.percent,
            args.stage,
            args.storage_uri_prefix,
            args.champion_alias,
            args.challenger_alias,
            args.name,
            args.store,
            args.tracking_uri,
        )
        text = registry.dump_values(values, header)
        if args.out == "-":
            print(text, end="")
        else:
            Path(args.out).write_text(text)
            print(f"wrote {args.out}")
        return 0
    except registry.RegistryError as exc:
        suffix = "; the store was not changed" if command == "import" else ""
        label = "store import" if command == "import" else command
        print(f"modelplane {label}: {exc}{suffix}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
