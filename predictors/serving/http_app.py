"""V2 REST endpoints (and /metrics) as a FastAPI app.

Bodies are read as bytes and decoded by rest_codec whatever the
Content-Type, so tritonclient (which may send application/octet-stream),
curl and httpx all work, with or without binary tensors.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY, exposition

import predictors
from predictors import metrics
from predictors.errors import ServingError
from predictors.protocol import rest_codec
from predictors.serving.access_log import AccessLog
from predictors.serving.http_callers import http_caller
from predictors.serving.limits import HttpLimits, check_json_size, read_body
from predictors.serving.repository import ModelRepository
from predictors.serving.requests import inference
from predictors.serving.responses import error_response as _error
from predictors.serving.responses import json_response as _json
from predictors.serving.triton_http import add_triton_extensions
from predictors.serving.v1_routes import add_v1_routes


def create_app(
    repository: ModelRepository,
    docs: bool = False,
    log_latency: bool = False,
    access_log_format: str | None = None,
    limits: HttpLimits | None = None,
) -> FastAPI:
    """The HTTP app; `docs` serves Swagger UI at /docs and the schema at /openapi.json."""
    limits = limits or HttpLimits()
    app = FastAPI(
        title="modelplane",
        version=predictors.__version__,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    if access_log_format:
        app.add_middleware(AccessLog, fmt=access_log_format)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, exc: ServingError) -> Response:
        return _error(exc)

    # Starlette tries routes in order, a regex match each: the one every
    # request takes comes first, then the probes the kubelet sends; the Triton
    # extensions go before `/v2/models/{name}`, which would take
    # `/v2/models/stats`.
    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        try:
            request_id = request.headers.get("x-request-id", "")
            with inference(repository, "http", name, version, request_id, log_latency) as model:
                # Shed before reading the body: refusing must cost little.
                model.refuse_if_full("http")
                body = await read_body(request, limits)
                header_length = request.headers.get(rest_codec.HEADER_LENGTH)
                check_json_size(body, header_length, limits)
                shm = repository.shared_memory
                async with http_caller(request) as caller:
                    payload, json_length = await model.handle(
                        lambda: shm.read_inputs(rest_codec.decode(body, header_length, request_id)),
                        lambda req, outputs: rest_codec.encode(
                            model.name, model.version, req, shm.write_outputs(req, outputs)
                        ),
                        caller,
                        decode_in_thread=len(body) > limits.decode_in_thread_bytes,
                    )
        except Exception as exc:
            return _error(exc)
        if json_length is None:
            return Response(payload, media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    @app.get("/")
    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        is_ready = repository.server_ready()
        return _json({"ready": is_ready}, 200 if is_ready else 503)

    add_triton_extensions(app, repository)

    @app.get("/v2")
    async def server_metadata() -> Response:
        return _json(repository.server_metadata())

    @app.get("/v2/models")
    async def list_models() -> Response:
        return _json({"models": sorted(repository.versions)})

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        model = repository.resolve(name, version)
        return _json(model.v2_metadata(repository.version_list(name)))

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        model = repository.resolve(name, version)
        doc = {"name": name, "version": model.version, "ready": model.ready}
        if model.error:
            doc["error"] = model.error
        return _json(doc, 200 if model.ready else 503)

    add_v1_routes(app, repository, log_latency, limits)

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        metrics.refresh_gpu_memory()
        encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(REGISTRY), headers={"Content-Type": content_type})

    return app
