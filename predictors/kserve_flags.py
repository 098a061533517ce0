"""KServe's ModelServer flags, as `modelplane serve` takes them (predictors.settings).

Declared here rather than inherited from `kserve.model_server.parser`:
importing that module parses sys.argv and loads KServe's copy of the
`inference.*` protobufs. tests/predictors/serving/test_kserve_flags.py checks
every flag, default and choice against the real parser.
"""

from __future__ import annotations

import argparse
import os

# KServe's defaults (kserve/constants/constants.py, model_server.py).
KSERVE_HTTP_PORT = 8080
KSERVE_HTTPS_PORT = 8443
KSERVE_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Accepted for KServe compatibility; they configure a transformer's calls to
# its predictor, and a modelplane server is the predictor.
TRANSFORMER_FLAGS = (
    "predictor_host",
    "protocol",
    "predictor_protocol",
    "predictor_use_ssl",
    "predictor_request_timeout_seconds",
    "predictor_request_retries",
    "enable_predictor_health_check",
)


def bool_flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on", "y", "t"}:
        return True
    if lowered in {"0", "false", "no", "off", "n", "f"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_kserve_arguments(parser: argparse.ArgumentParser) -> None:
    """The rest of KServe's ModelServer flags, as kserve.model_server.parser declares them."""
    kserve = parser.add_argument_group("KServe ModelServer flags")
    kserve.add_argument("--max_asyncio_workers", type=int, default=None)
    kserve.add_argument("--enable_docs_url", type=bool_flag, default=False)
    kserve.add_argument(
        "--enable_latency_logging",
        type=bool_flag,
        # KServe's default is true; the same figures are in the metrics, and
        # a log line per request costs more than a small model's run.
        default=False,
        help="a log line per request with its latency (default false, unlike KServe)",
    )
    kserve.add_argument("--configure_logging", type=bool_flag, default=True)
    kserve.add_argument("--log_config_file", default=None)
    kserve.add_argument("--access_log_format", default=None)
    kserve.add_argument(
        "--event-loop",
        "--event_loop",
        dest="event_loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="auto: asyncio (uvloop measured slower here, README)",
    )
    kserve.add_argument(
        "--timeout-keep-alive",
        "--timeout_keep_alive",
        dest="timeout_keep_alive",
        type=int,
        default=65,
    )
    for name in ("--grpc_max_send_message_length", "--grpc_max_receive_message_length"):
        kserve.add_argument(name, type=int, default=KSERVE_MAX_MESSAGE_BYTES)
    kserve.add_argument("--ssl_certfile", default=os.environ.get("KSERVE_TLS_CERT_FILE"))
    kserve.add_argument("--ssl_keyfile", default=os.environ.get("KSERVE_TLS_KEY_FILE"))
    # Transformer-only: present in the namespace only when given, so a
    # start-up line can say which were ignored.
    kinds: dict[str, dict] = {
        "protocol": {"choices": ["v1", "v2", "grpc-v2"]},
        "predictor_protocol": {"choices": ["v1", "v2", "grpc-v2"]},
        "predictor_use_ssl": {"type": bool_flag},
        "predictor_request_timeout_seconds": {"type": int},
        "predictor_request_retries": {"type": int},
        "enable_predictor_health_check": {"action": "store_true"},
    }
    for flag in TRANSFORMER_FLAGS:
        kserve.add_argument(
            f"--{flag}",
            default=argparse.SUPPRESS,
            help="accepted, ignored (a KServe transformer's flag)",
            **kinds.get(flag, {}),
        )
