"""Errors a client can cause or see, and how each protocol reports them.

The exception classes are KServe's, so a modelplane model raises the same
errors under KServe's own ModelServer.
"""

from __future__ import annotations

import grpc
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

__all__ = ["InvalidInput", "ModelNotFound", "ModelNotReady", "VersionNotFound", "describe"]


class VersionNotFound(ModelNotFound):
    def __init__(self, model_name: str, version: str, available: list[str]):
        self.reason = (
            f"Model {model_name} has no version {version}; "
            f"available versions: {', '.join(available) or 'none'}."
        )


# exception class -> (HTTP status, gRPC status code)
_STATUS: list[tuple[type[BaseException], int, grpc.StatusCode]] = [
    (InvalidInput, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, 404, grpc.StatusCode.NOT_FOUND),
    (ModelNotReady, 503, grpc.StatusCode.UNAVAILABLE),
]


def describe(exc: BaseException) -> tuple[int, grpc.StatusCode, str]:
    """HTTP status, gRPC code and message for an exception raised while serving."""
    for cls, http_status, grpc_code in _STATUS:
        if isinstance(exc, cls):
            return http_status, grpc_code, str(exc)
    return 500, grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"


GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
}
