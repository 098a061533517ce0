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

    add = store_commands.add_parser("add", help="import your own ONNX or TorchScript file")
    add.add_argument("--store", default="model-store")
    add.add_argument("--name", required=True)
    add.add_argument("--version")
    add.add_argument("--format", choices=["onnx", "torchscript"], help="default: from the file")
    add.add_argument("--input-name", action="append", default=[], help="TorchScript: per input")
    add.add_argument(
        "--input-shape",
        action="append",
        default=[],
        help="TorchScript: per input, -1 for the batch axis, e.g. -1,1,8,8",
    )
    add.add_argument("--input-dtype", action="append", default=[], help="TorchScript: e.g. FP32")
    add.add_argument("--output-name", action="append", default=[], help="TorchScript: per output")
    add.add_argument("--labels", help="comma-separated class labels")
    add.add_argument("file", type=Path)

    for name, text in (("list", "show the models in a store"), ("verify", "check checksums")):
        sub = store_commands.add_parser(name, help=text)
        sub.add_argument("--store", default="model-store")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # KServe parses sys.argv when imported; it must not see (or reject) ours.
    sys.argv = sys.argv[:1]
    if args.command == "serve":
        return _serve(args)
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


def _list(args: argparse.Namespace) -> int:
    from predictors.metadata import MetadataError
    from predictors.model_store import StoreError, discover

    try:
        found = discover(Path(args.store))
    except StoreError as exc:
        print(f"modelplane store list: {exc}", file=sys.stderr)
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
    from predictors.model_store import StoreError, discover, verify

    try:
        found = discover(Path(args.store))
    except StoreError as exc:
        print(f"modelplane store verify: {exc}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
