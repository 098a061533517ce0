"""How modelplane's errors reach clients: HTTP status, gRPC code and message.

The statuses are those KServe's SDK gives the same errors (kserve/errors.py
and protocol/grpc/interceptors.py), so clients see no difference, plus the
ones KServe lacks: a full queue is 503 with Retry-After / RESOURCE_EXHAUSTED,
a passed deadline 504 / DEADLINE_EXCEEDED, and a client that hung up before
its request was read 499 (nginx's "client closed request"), which no error
ratio counts. Whatever the exception, the message names no host path and
carries no traceback: those go to the log.
"""

from __future__ import annotations

import grpc
from starlette.requests import ClientDisconnect

from predictors.errors import (
    ClientGone,
    DeadlineExceeded,
    InvalidInput,
    ModelFailed,
    ModelNotFound,
    ModelNotReady,
    Overloaded,
    ServingError,
    TooLarge,
    redact_paths,
)

_STATUS: list[tuple[type[BaseException], int, grpc.StatusCode]] = [
    (TooLarge, 413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidInput, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, 404, grpc.StatusCode.NOT_FOUND),
    (ModelNotReady, 503, grpc.StatusCode.UNAVAILABLE),
    (Overloaded, 503, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceeded, 504, grpc.StatusCode.DEADLINE_EXCEEDED),
    (ModelFailed, 500, grpc.StatusCode.INTERNAL),
    (ClientGone, 499, grpc.StatusCode.CANCELLED),
    (ClientDisconnect, 499, grpc.StatusCode.CANCELLED),
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
    """What the client is told: our errors' own text; for anything else, only its kind."""
    if isinstance(exc, ServingError):
        return redact_paths(exc.message)
    if isinstance(exc, ClientDisconnect):
        return "the client closed the connection before the request was read"
    return f"internal error ({type(exc).__name__}); the server log has the details"


def retry_after(exc: BaseException) -> str | None:
    """The Retry-After header value for a shed request."""
    if isinstance(exc, Overloaded):
        return str(max(1, round(exc.retry_after_s)))
    return None


def is_server_fault(exc: BaseException) -> bool:
    """An error to log with its traceback: neither the client's doing nor already logged.

    Not-ready models, shed and expired requests are expected under load; a
    model's run-time failure was logged in full where it happened.
    """
    return http_status(exc) >= 500 and not isinstance(
        exc, ModelNotReady | ModelNotFound | Overloaded | DeadlineExceeded | ModelFailed
    )
