"""Errors a client can cause or see while a model is served.

modelplane's own classes, free of kserve and grpc, so every layer (codecs,
validation, the model) can raise them and unit tests can import them. The
serving layer maps them to HTTP statuses and gRPC codes
(`predictors.serving.status`); the KServe edge maps them to KServe's own
error classes (`predictors.serving.kserve_adapter`).
"""

from __future__ import annotations

import re


class ServingError(Exception):
    """Base class: the message is what the client is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(ServingError):
    """The request is malformed or does not fit the model (HTTP 400, INVALID_ARGUMENT)."""


class ModelNotFound(ServingError):
    """No model of that name is served (HTTP 404, NOT_FOUND)."""

    def __init__(self, model_name: str, message: str | None = None) -> None:
        super().__init__(message or f"Model with name {model_name} does not exist.")
        self.model_name = model_name


class VersionNotFound(ModelNotFound):
    def __init__(self, model_name: str, version: str, available: list[str]) -> None:
        super().__init__(
            model_name,
            f"Model {model_name} has no version {version}; "
            f"available versions: {', '.join(available) or 'none'}.",
        )


class ModelNotReady(ServingError):
    """The model exists but cannot serve now (HTTP 503, UNAVAILABLE)."""

    def __init__(self, model_name: str, detail: str = "") -> None:
        super().__init__(
            f"Model with name {model_name} is not ready." + (f" {detail}" if detail else "")
        )
        self.model_name = model_name


class Refused(ValueError):
    """A command (store add, store import, package, ...) was refused; the message says why.

    The CLI prints the message and exits 2; nothing was changed.
    """


class TooLarge(InvalidInput):
    """The request is larger than the server takes (HTTP 413)."""


class Overloaded(ServingError):
    """The model's queue is full: try again shortly (HTTP 503 + Retry-After, RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(ServingError):
    """The request's deadline passed before it ran (HTTP 504, DEADLINE_EXCEEDED)."""


class ModelFailed(ServingError):
    """The runtime failed on a valid request (HTTP 500, INTERNAL); the log has the details."""


class ClientGone(ServingError):
    """The client closed the connection before the request was read (HTTP 499, CANCELLED)."""


# An absolute host path: two or more components after a leading '/'.
_HOST_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+~-]+/)+[\w.@+~-]*")


def redact_paths(text: str) -> str:
    """The text with host paths replaced: what reaches a client says nothing of the disk."""
    return _HOST_PATH.sub("<path>", text)
