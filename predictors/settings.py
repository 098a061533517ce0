"""Settings of `modelplane serve`, read once from the command line.

`modelplane serve` takes every flag of KServe's ModelServer
(`kserve.model_server.parser`, kserve 0.21.0 model_server.py), with KServe's
names, types and defaults, so a ServingRuntime or InferenceService that passes
KServe's arguments works unchanged (tests/predictors/test_kserve_flags.py
checks every flag against the real parser). They are declared here rather than
inherited with `parents=[kserve.model_server.parser]`: importing that module
parses sys.argv and loads KServe's copy of the `inference.*` protobufs, which
clashes with the Triton service this server speaks. Flags that only mean
something to a KServe transformer (`--predictor_host`, ...) are accepted and
logged as ignored. Dashed spellings of modelplane's own flags are accepted too.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from predictors.admission import AdmissionConfig
from predictors.errors import Refused
from predictors.kserve_flags import (
    KSERVE_HTTP_PORT,
    KSERVE_HTTPS_PORT,
    KSERVE_MAX_MESSAGE_BYTES,
    TRANSFORMER_FLAGS,
    add_kserve_arguments,
    bool_flag,
)
from predictors.metadata import BatchingConfig, check_batching
from predictors.model_inspect import Hints, parse_torch_inputs
from predictors.runtimes import RuntimeOptions
from predictors.serving.limits import HttpLimits


def _positive_arg(value: int, flag: str) -> int:
    if value < 1:
        raise Refused(f"{flag} must be at least 1, got {value}")
    return value


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
    #: what bare model files (no metadata.json) cannot say: TorchScript inputs, names
    bare_hints: Hints = field(default_factory=Hints)
    #: each model's bounded queue (predictors.admission)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    #: what one HTTP request may cost (predictors.serving.limits)
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    # -- KServe ModelServer flags that mean something here
    #: threads of the event loop's default executor (None: Python's default)
    max_asyncio_workers: int | None = None
    #: interactive API docs at /docs (Swagger UI) and the schema at /openapi.json
    enable_docs_url: bool = False
    #: one log line per request with its latency, in KServe's format
    enable_latency_logging: bool = False
    #: False: leave logging as the process found it (an embedding program configures it)
    configure_logging: bool = True
    #: a logging dictConfig as JSON or YAML (KServe's --log_config_file)
    log_config_file: Path | None = None
    #: an access log line per HTTP request in this format (gunicorn-style atoms)
    access_log_format: str | None = None
    event_loop: str = "auto"
    timeout_keep_alive: int = 65
    grpc_max_send_message_length: int = KSERVE_MAX_MESSAGE_BYTES
    grpc_max_receive_message_length: int = KSERVE_MAX_MESSAGE_BYTES
    #: both set: HTTPS on the HTTP port and TLS on the gRPC port
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    #: transformer-only flags that were given (logged at start, otherwise ignored)
    ignored_flags: tuple[str, ...] = ()

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None and self.ssl_keyfile is not None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeSettings:
        batching = None
        if args.batching != "model":
            batching = BatchingConfig(
                enabled=args.batching == "on",
                max_rows=args.max_batch_size,
                max_queue_delay_ms=args.max_queue_delay_ms,
            )
            check_batching(batching)
        certfile = Path(args.ssl_certfile) if args.ssl_certfile else None
        keyfile = Path(args.ssl_keyfile) if args.ssl_keyfile else None
        http_port = args.http_port
        if certfile and keyfile and http_port == KSERVE_HTTP_PORT:
            # KServe's ModelServer moves to 8443 when TLS is on and the port
            # was left at its default (model_server.py, ModelServer.__init__).
            http_port = KSERVE_HTTPS_PORT
        return cls(
            model_store=Path(args.model_store),
            models=[m for m in args.models.split(",") if m] if args.models else None,
            model_name=args.model_name,
            host=args.host,
            http_port=http_port,
            grpc_port=args.grpc_port,
            enable_grpc=args.enable_grpc,
            grpc_threads=args.grpc_threads,
            workers=args.workers,
            grace_period=args.grace_period,
            runtime=RuntimeOptions(
                device=args.device,
                intra_op_threads=args.threads,
                parallel_runs=args.parallel_runs,
                spin=args.spin,
                fp16=args.fp16,
            ),
            batching=batching,
            log_level=args.log_level.upper(),
            admission=AdmissionConfig(
                _positive_arg(args.max_queue_size, "--max_queue_size"),
                _positive_arg(args.max_queue_rows, "--max_queue_rows"),
            ),
            http_limits=HttpLimits(
                max_request_bytes=_positive_arg(args.max_request_bytes, "--max_request_bytes"),
                max_json_bytes=_positive_arg(args.max_json_bytes, "--max_json_bytes"),
                max_header_bytes=_positive_arg(args.max_header_bytes, "--max_header_bytes"),
            ),
            bare_hints=Hints(
                parse_torch_inputs(args.input_name, args.input_shape, args.input_dtype),
                list(args.input_name),
                list(args.output_name),
            ),
            max_asyncio_workers=args.max_asyncio_workers,
            enable_docs_url=args.enable_docs_url,
            enable_latency_logging=args.enable_latency_logging,
            configure_logging=args.configure_logging,
            log_config_file=Path(args.log_config_file) if args.log_config_file else None,
            access_log_format=args.access_log_format,
            event_loop=args.event_loop,
            timeout_keep_alive=args.timeout_keep_alive,
            grpc_max_send_message_length=args.grpc_max_send_message_length,
            grpc_max_receive_message_length=args.grpc_max_receive_message_length,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            ignored_flags=tuple(f for f in TRANSFORMER_FLAGS if hasattr(args, f)),
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
        "--enable_grpc", "--enable-grpc", dest="enable_grpc", type=bool_flag, default=True
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
        help="intra-op threads per model run (0: every CPU this process may use, "
        "cgroup CPU quota included)",
    )
    parser.add_argument(
        "--parallel_runs",
        "--parallel-runs",
        dest="parallel_runs",
        type=int,
        default=0,
        help="runs of one model at once with batching off (0: one per CPU); "
        "with batching on, one batch runs at a time",
    )
    parser.add_argument(
        "--spin",
        choices=["auto", "on", "run", "off"],
        default="auto",
        help="intra-op threads spin waiting for work: on, only while a run is in progress "
        "(run), or off (auto: off when the threads cover every CPU, else on)",
    )
    parser.add_argument("--fp16", action="store_true", help="ONNX on CUDA: half precision")
    parser.add_argument(
        "--batching",
        choices=["model", "on", "off"],
        default="model",
        help="dynamic batching: as each model's metadata says, or on/off for all",
    )
    add_batch_limit_arguments(parser)
    parser.add_argument(
        "--log_level",
        "--log-level",
        dest="log_level",
        default=os.environ.get("KSERVE_LOGLEVEL", "INFO"),
        help="default: $KSERVE_LOGLEVEL, else INFO",
    )
    limits = parser.add_argument_group(
        "limits", "what the server takes at once, and per request (README, Limits)"
    )
    # (flag, default, help): each also spelled with dashes.
    for flag, default, text in (
        ("max_queue_size", AdmissionConfig.max_requests,
         "requests one model holds at once, queued or running; more are shed at once "
         "with 503 + Retry-After / RESOURCE_EXHAUSTED"),
        ("max_queue_rows", AdmissionConfig.max_rows,
         "rows one model holds at once, across those requests"),
        ("max_request_bytes", HttpLimits.max_request_bytes,
         "largest HTTP request body (413 past it)"),
        ("max_json_bytes", HttpLimits.max_json_bytes,
         "largest JSON part of an HTTP request (413 past it; decoding holds ~8.5x it)"),
        ("max_header_bytes", HttpLimits.max_header_bytes,
         "largest HTTP request headers (431 past it)"),
    ):  # fmt: skip
        limits.add_argument(
            f"--{flag}", f"--{flag.replace('_', '-')}", dest=flag, type=int, default=default,
            help=text,
        )  # fmt: skip
    bare = parser.add_argument_group(
        "bare models", "a folder with one model file and no metadata.json (TorchScript only)"
    )
    bare.add_argument("--input_name", "--input-name", action="append", default=[])
    bare.add_argument(
        "--input_shape", "--input-shape", action="append", default=[], help="e.g. -1,1,8,8"
    )
    bare.add_argument("--input_dtype", "--input-dtype", action="append", default=[])
    bare.add_argument("--output_name", "--output-name", action="append", default=[])
    add_kserve_arguments(parser)


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
