"""Triton's statistics extension: per model version, from the measurements /metrics shows.

`GET /v2/models[/{m}[/versions/{v}]]/stats` and gRPC `ModelStatistics`.
predictors.metrics takes the numbers in the calls that feed the Prometheus
series, with Triton's meaning (perf_analyzer checks it):

- success / fail: requests by outcome and their whole time, from receipt to
  encoded response (`modelplane_requests`, `modelplane_request_duration_seconds`);
- queue: requests through the batcher's queue and their waits (the `queue`
  stage of `modelplane_request_stage_seconds`);
- compute_input, compute_infer, compute_output: counted once per successful
  request; their times are the `decode` stage (decoding and validation), the
  model runs the requests waited on (a batch's run once for each request in
  it), and the `encode` stage;
- batch_stats: per batch size, the model's runs and their time (the
  `inference` stage and `modelplane_batch_size`, run for run);
- inference_count: rows run; execution_count: runs; last_inference: ms since
  the epoch of the last request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response

from predictors import metrics
from predictors.protocol.grpc_messages import pb
from predictors.protocol.proto_json import to_json
from predictors.serving.repository import ModelRepository
from predictors.serving.responses import json_response

#: Triton's names for modelplane's stages
COMPUTE_STAGES = {
    "decode": "compute_input",
    "inference": "compute_infer",
    "encode": "compute_output",
}


def model_statistics(repository: ModelRepository, name: str = "", version: str = "") -> Any:
    """`inference.ModelStatisticsResponse` for every served version, one model, or one version."""
    if name:
        repository.resolve(name, version or None)  # 404 for unknown models and versions
        chosen = [m for m in repository.all_models() if m.name == name]
        if version:
            chosen = [m for m in chosen if m.version == version]
    else:
        chosen = repository.all_models()
    response = pb.ModelStatisticsResponse()
    for model in sorted(chosen, key=lambda m: (m.name, m.version)):
        snapshot = metrics.statistics_of(model.name, model.version).snapshot()
        stats = response.model_stats.add(
            name=model.name,
            version=model.version,
            last_inference=snapshot["last_inference"],
            inference_count=snapshot["inference_count"],
            execution_count=snapshot["execution_count"],
        )
        inference = stats.inference_stats
        inference.success.CopyFrom(pb.StatisticDuration(**snapshot["success"]))
        inference.fail.CopyFrom(pb.StatisticDuration(**snapshot["fail"]))
        inference.queue.CopyFrom(pb.StatisticDuration(**snapshot["queue"]))
        for ours, triton in COMPUTE_STAGES.items():
            getattr(inference, triton).CopyFrom(pb.StatisticDuration(**snapshot["compute"][ours]))
        for rows, tally in snapshot["batches"].items():
            # Triton splits a run in three; here inputs reach the runtime as
            # ready arrays, so the whole run is compute_infer.
            batch = stats.batch_stats.add(batch_size=rows)
            batch.compute_infer.CopyFrom(pb.StatisticDuration(**tally))
    return response


def grpc_model_statistics(repository: ModelRepository, request: Any) -> Any:
    return model_statistics(repository, request.name, request.version)


def add_routes(app: FastAPI, repository: ModelRepository) -> None:
    """Register before `/v2/models/{name}`, which would otherwise take `/v2/models/stats`."""

    @app.get("/v2/models/stats")
    @app.get("/v2/models/{name}/stats")
    @app.get("/v2/models/{name}/versions/{version}/stats")
    async def stats(name: str = "", version: str = "") -> Response:
        return json_response(to_json(model_statistics(repository, name, version)))
