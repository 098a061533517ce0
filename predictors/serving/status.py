"""How modelplane's errors reach clients: HTTP status, gRPC code and message.

The statuses are those KServe's SDK gives the same errors (kserve/errors.py
and protocol/grpc/interceptors.py), so clients see no difference.
"""

from __future__ import annotations

import grpc

from predictors.errors import InvalidInput, ModelNotFound, ModelNotReady, ServingError

_STATUS: list[tuple[type[BaseException], int, grpc.StatusCode]] = [
    (InvalidInput, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, 404, grpc.StatusCode.NOT_FOUND),
    (ModelNotReady, 503, grpc.StatusCode.UNAVAILABLE),
]


def http_status(exc: BaseException) -> int:
    for cls, status, _ in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def grpc_code(exc: BaseException) -> grpc.StatusCode:
    for cls, _, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def client_message(exc: BaseException) -> str:
    """What the client is told: our errors' own text, else the exception's type and text."""
    if isinstance(exc, ServingError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def is_server_fault(exc: BaseException) -> bool:
    """A 5xx that is not the client's doing (not-ready models are expected, not faults)."""
    return http_status(exc) >= 500 and not isinstance(exc, ModelNotReady | ModelNotFound)
