"""Triton's HTTP extensions beside the core V2 routes, and V2 error bodies everywhere.

`add_triton_extensions(app, repository)` is all http_app does: it adds

- V2 error bodies `{"error": "..."}` for what the routes themselves do not
  answer: unknown routes (404), wrong methods (405), unexpected faults (500);
- gzip/deflate compression of requests and answers (http_compression);
- the extensions' routes: statistics, model configuration, model
  repository, system (and CUDA's "not supported") shared memory.

Call it before the core routes are added: `/v2/models/stats` must come
before `/v2/models/{name}`, which would take it for a model named "stats".
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from predictors.serving import model_config, repository_extension, shared_memory, statistics
from predictors.serving.http_compression import Compression
from predictors.serving.repository import ModelRepository
from predictors.serving.responses import error_response, json_response


def add_triton_extensions(app: FastAPI, repository: ModelRepository) -> None:
    add_v2_error_bodies(app)
    app.add_middleware(Compression)
    statistics.add_routes(app, repository)
    model_config.add_routes(app, repository)
    repository_extension.add_routes(app, repository)
    shared_memory.add_routes(app, repository.shared_memory)


def add_v2_error_bodies(app: FastAPI) -> None:
    """Starlette's own errors (`{"detail": ...}`, or plain text for a 500) as V2 bodies."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = f"{exc.detail}: {request.method} {request.url.path}"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        response = json_response({"error": message}, exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return json_response({"error": f"invalid request: {problems}"}, 400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return error_response(exc)
