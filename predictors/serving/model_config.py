"""Triton's model configuration extension: a served model as a Triton `ModelConfig`.

`GET /v2/models/{m}[/versions/{v}]/config` and gRPC `ModelConfig` answer with
what the store's metadata.json and the loaded model say, truthfully enough
that perf_analyzer and tritonclient-based tools plan requests from it:

- `max_batch_size` is the most rows one request may carry when every tensor
  has the batch axis first (then `dims` leave that axis out, Triton's
  convention); 0 when the model is not batched and `dims` are whole shapes;
- `dynamic_batching` is present only when modelplane batches the model, with
  its queue delay; the most rows one batch holds, which Triton has no field
  for, is the parameter `dynamic_batching.max_rows`;
- `instance_group` says where it runs (KIND_GPU with the device's index, or
  KIND_CPU) and how many runs go at once: 1 with batching (one batch at a
  time), else `--parallel_runs` (one per CPU by default), as
  predictors.runtimes.parallel_runs decides for predictors.model;
- `platform` is the V2 metadata's; `backend` Triton's name for the engine.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response

from predictors.errors import ModelNotReady
from predictors.metadata import MetadataError, ModelMetadata
from predictors.model import ServedModel
from predictors.protocol.grpc_messages import config_pb, pb
from predictors.protocol.proto_json import to_json
from predictors.runtimes import parallel_runs
from predictors.serving.repository import ModelRepository
from predictors.serving.responses import json_response

TRITON_TYPES = {
    "BOOL": config_pb.TYPE_BOOL,
    "UINT8": config_pb.TYPE_UINT8,
    "UINT16": config_pb.TYPE_UINT16,
    "UINT32": config_pb.TYPE_UINT32,
    "UINT64": config_pb.TYPE_UINT64,
    "INT8": config_pb.TYPE_INT8,
    "INT16": config_pb.TYPE_INT16,
    "INT32": config_pb.TYPE_INT32,
    "INT64": config_pb.TYPE_INT64,
    "FP16": config_pb.TYPE_FP16,
    "FP32": config_pb.TYPE_FP32,
    "FP64": config_pb.TYPE_FP64,
    "BYTES": config_pb.TYPE_STRING,
}
#: Triton's backend names for the engines of predictors.formats
TRITON_BACKENDS = {"onnx": "onnxruntime", "torchscript": "pytorch", "torch_export": "pytorch"}


def _metadata(model: ServedModel) -> ModelMetadata:
    if model.meta is not None:
        return model.meta
    try:
        return model.stored.read_metadata()
    except MetadataError as exc:
        raise ModelNotReady(model.name, str(exc)) from exc


def model_config(model: ServedModel) -> Any:
    """The `inference.ModelConfig` of a served model version."""
    meta = _metadata(model)
    tensors = (*meta.inputs, *meta.outputs)
    batched = bool(tensors) and all(t.batched for t in tensors)
    config = config_pb.ModelConfig(
        name=model.name,
        platform=meta.platform,
        backend=TRITON_BACKENDS.get(meta.format, meta.format),
        max_batch_size=meta.max_batch_size if batched else 0,
        default_model_filename=meta.model_file,
    )
    config.version_policy.all.SetInParent()
    config.model_transaction_policy.decoupled = False
    for spec in meta.inputs:
        config.input.add(
            name=spec.name,
            data_type=TRITON_TYPES[spec.datatype],
            dims=spec.shape[1:] if batched else spec.shape,
        )
    for spec in meta.outputs:
        config.output.add(
            name=spec.name,
            data_type=TRITON_TYPES[spec.datatype],
            dims=spec.shape[1:] if batched else spec.shape,
        )
    batching = model.batching
    if batching is not None and batching.enabled:
        config.dynamic_batching.max_queue_delay_microseconds = round(
            batching.max_queue_delay_ms * 1000
        )
        config.parameters["dynamic_batching.max_rows"].string_value = str(batching.max_rows)
    group = config.instance_group.add(name=f"{model.name}_0")
    device = model.runtime.device if model.runtime is not None else None
    if device is None:
        group.kind = config_pb.ModelInstanceGroup.KIND_AUTO
        group.count = 1
    else:
        if device.startswith("cuda"):
            group.kind = config_pb.ModelInstanceGroup.KIND_GPU
            group.gpus.append(int(device.partition(":")[2] or 0))
        else:
            group.kind = config_pb.ModelInstanceGroup.KIND_CPU
        enabled = batching is not None and batching.enabled
        group.count = parallel_runs(model.options.parallel_runs, enabled)
    config.parameters["state"].string_value = model.state
    return config


def grpc_model_config(repository: ModelRepository, request: Any) -> Any:
    model = repository.resolve(request.name, request.version)
    return pb.ModelConfigResponse(config=model_config(model))


def add_routes(app: FastAPI, repository: ModelRepository) -> None:
    @app.get("/v2/models/{name}/config")
    @app.get("/v2/models/{name}/versions/{version}/config")
    async def config(name: str, version: str | None = None) -> Response:
        return json_response(to_json(model_config(repository.resolve(name, version))))
