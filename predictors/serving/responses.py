"""HTTP responses every route shares: JSON bodies, and V2 error bodies `{"error": "..."}`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import Response

from predictors.serving.status import client_message, http_status, is_server_fault, retry_after

log = logging.getLogger("predictors.serving")


def json_response(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def error_response(exc: BaseException) -> Response:
    if is_server_fault(exc):
        log.exception("request failed", exc_info=exc)
    response = json_response({"error": client_message(exc)}, http_status(exc))
    wait = retry_after(exc)
    if wait is not None:
        response.headers["Retry-After"] = wait
    return response
