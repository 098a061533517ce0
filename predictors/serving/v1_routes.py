"""KServe's V1 protocol beside V2: `/v1/models[/{m}]` and `/v1/models/{m}:predict`.

The routes and answers are those of KServe's own predictors
(kserve/protocol/rest/v1_endpoints.py: V1Endpoints.models, model_ready,
predict; explain is 501 where no explainer runs), and a V1 prediction takes
the same request path as V2 (validation, batching, metrics).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from predictors.errors import ModelNotReady
from predictors.protocol import v1_codec
from predictors.protocol.tensors import InferenceRequest
from predictors.serving.http_callers import http_caller
from predictors.serving.limits import HttpLimits, check_json_size, read_body
from predictors.serving.repository import ModelRepository
from predictors.serving.requests import inference
from predictors.serving.responses import error_response, json_response


def add_v1_routes(
    app: FastAPI,
    repository: ModelRepository,
    log_latency: bool = False,
    limits: HttpLimits | None = None,
) -> None:
    limits = limits or HttpLimits()

    @app.get("/v1/models")
    async def v1_models() -> Response:
        return json_response({"models": sorted(repository.versions)})

    @app.get("/v1/models/{name}")
    async def v1_model_ready(name: str) -> Response:
        model = repository.resolve(name)
        if not model.ready:
            raise ModelNotReady(name, model.error or "")
        return json_response({"name": name, "ready": True})

    @app.post("/v1/models/{name}:predict")
    async def v1_predict(name: str, request: Request) -> Response:
        request_id = request.headers.get("x-request-id", "")
        try:
            with inference(repository, "http", name, None, request_id, log_latency) as model:
                model.refuse_if_full("http")
                body = await read_body(request, limits)
                check_json_size(body, None, limits)

                def decode() -> InferenceRequest:
                    assert model.meta is not None  # handle() decodes only when loaded
                    specs = [(t.name, t.datatype) for t in model.meta.inputs]
                    return v1_codec.decode(body, specs, request_id)

                async with http_caller(request) as caller:
                    payload = await model.handle(
                        decode,
                        lambda req, out: v1_codec.encode(out),
                        caller,
                        decode_in_thread=len(body) > limits.decode_in_thread_bytes,
                    )
        except Exception as exc:
            return error_response(exc)
        return Response(payload, media_type="application/json")

    @app.post("/v1/models/{name}:explain")
    async def v1_explain(name: str) -> Response:
        repository.resolve(name)
        return json_response({"error": f"model {name} has no explainer"}, 501)
