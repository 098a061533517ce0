"""Settings of `modelplane serve`, read once from the command line.

Flag names follow KServe's ModelServer (`--http_port`, `--model_name`, ...)
so a ServingRuntime passes the same arguments it passes to any KServe
predictor; dashed spellings are accepted too.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from predictors.metadata import BatchingConfig
from predictors.runtimes import RuntimeOptions


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on", "y", "t"}:
        return True
    if lowered in {"0", "false", "no", "off", "n", "f"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class ServeSettings:
    model_store: Path
    models: list[str] | None = None
    model_name: str | None = None
    host: str = "0.0.0.0"
    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool = True
    #: gRPC requests handled at once (each holds a thread while it runs or waits)
    grpc_threads: int = 4
    workers: int = 1
    grace_period: float = 30.0
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    #: None: each model's metadata.json decides
    batching: BatchingConfig | None = None
    log_level: str = "INFO"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeSettings:
        batching = None
        if args.batching != "model":
            batching = BatchingConfig(
                enabled=args.batching == "on",
                max_rows=args.max_batch_size,
                max_queue_delay_ms=args.max_queue_delay_ms,
            )
        return cls(
            model_store=Path(args.model_store),
            models=[m for m in args.models.split(",") if m] if args.models else None,
            model_name=args.model_name,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            enable_grpc=args.enable_grpc,
            grpc_threads=args.grpc_threads,
            workers=args.workers,
            grace_period=args.grace_period,
            runtime=RuntimeOptions(
                device=args.device, intra_op_threads=args.threads, fp16=args.fp16
            ),
            batching=batching,
            log_level=args.log_level.upper(),
        )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-store",
        "--model_store",
        "--model_dir",
        "--model-dir",
        dest="model_store",
        default="model-store",
        help="a store (<name>/<version>/), one model (<version>/) or one version folder "
        "(KServe mounts the storageUri at /mnt/models)",
    )
    parser.add_argument("--models", help="comma-separated names: serve only these models")
    parser.add_argument(
        "--model_name",
        "--model-name",
        dest="model_name",
        help="serve the one model found under this name (KServe passes the InferenceService name)",
    )
    parser.add_argument(
        "--host", default="0.0.0.0", help="listen address (default: all interfaces)"
    )
    parser.add_argument("--http_port", "--http-port", dest="http_port", type=int, default=8080)
    parser.add_argument("--grpc_port", "--grpc-port", dest="grpc_port", type=int, default=8081)
    parser.add_argument(
        "--enable_grpc", "--enable-grpc", dest="enable_grpc", type=_bool, default=True
    )
    parser.add_argument(
        "--max_threads",
        "--max-threads",
        dest="grpc_threads",
        type=_positive,
        default=4,
        help="gRPC handler threads: the most gRPC requests handled at once, and so the "
        "most gRPC requests one dynamic batch can hold (KServe's flag and default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes; modelplane runs one per pod (scale with replicas), see README",
    )
    parser.add_argument(
        "--grace_period",
        "--grace-period",
        dest="grace_period",
        type=float,
        default=30.0,
        help="seconds to let in-flight requests finish after SIGTERM",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (GPU when there is one), cpu, or cuda[:N]"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads per model (0: all CPUs this process may use but one, at least 1)",
    )
    parser.add_argument("--fp16", action="store_true", help="ONNX on CUDA: half precision")
    parser.add_argument(
        "--batching",
        choices=["model", "on", "off"],
        default="model",
        help="dynamic batching: as each model's metadata says, or on/off for all",
    )
    add_batch_limit_arguments(parser)
    parser.add_argument("--log_level", "--log-level", dest="log_level", default="INFO")


def add_batch_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The dynamic batch limits; `modelplane bench` passes them on to its servers."""
    parser.add_argument(
        "--max_batch_size",
        "--max-batch-size",
        dest="max_batch_size",
        type=int,
        default=4,
        help="rows per dynamic batch (with --batching on)",
    )
    parser.add_argument(
        "--max_queue_delay_ms",
        "--max-queue-delay-ms",
        dest="max_queue_delay_ms",
        type=float,
        default=0.0,
        help="wait this long for more requests (with --batching on)",
    )
