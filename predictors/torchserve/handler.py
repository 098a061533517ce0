"""TorchServe handler for modelplane TorchScript models, speaking KServe V2.

This file is copied into every MAR archive and runs inside TorchServe's Python
worker, where `predictors` is not installed (KServe's `pytorch/torchserve-kfs`
image has torch and numpy only). So it imports nothing from modelplane and
stays compatible with older Pythons (no `match`, no runtime `X | Y`).

It reads the store entry's metadata.json (packed next to model.pt), checks the
model file's sha256 as `modelplane serve` does, and answers two request shapes:

- TorchServe's `kservev2` envelope (what KServe's `kserve-torchserve` runtime
  sets through TS_SERVICE_ENVELOPE for protocol v2): the envelope hands over the
  request's V2 inputs ([{name, shape, datatype, data}]) and wraps what this
  returns (one array per output) into a V2 response itself.
- No envelope (`POST /predictions/<model>` with a V2 JSON body): each request
  in the batch is a whole V2 request, answered with a whole V2 response.

Either way the probabilities are those the modelplane Torch predictor returns:
the same TorchScript module, FP32 in and out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, NoReturn

import numpy as np
import torch

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.pt"

V2_TO_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class BadRequest(ValueError):
    """The request does not match the model; answered with HTTP 400."""


def _fail(message: str) -> NoReturn:
    # TorchServe maps PredictionException's code to the HTTP status; outside
    # TorchServe (unit tests) a plain ValueError says the same.
    try:
        from ts.utils.util import PredictionException
    except ImportError:
        raise BadRequest(message) from None
    raise PredictionException(message, 400)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelplaneHandler:
    def __init__(self) -> None:
        self.initialized = False
        self.metadata: dict[str, Any] = {}
        self.module: Any = None
        self.device = torch.device("cpu")

    def initialize(self, context: Any) -> None:
        props = context.system_properties
        model_dir = props.get("model_dir") or "."
        with open(os.path.join(model_dir, METADATA_FILE)) as fh:
            self.metadata = json.load(fh)
        model_path = os.path.join(model_dir, MODEL_FILE)
        expected = self.metadata.get("files", {}).get(MODEL_FILE)
        actual = _sha256(model_path)
        # A model whose bytes differ from what was exported must not serve.
        if expected != actual:
            raise RuntimeError(
                f"{MODEL_FILE} checksum mismatch: metadata.json says {expected}, file has {actual}"
            )
        gpu_id = props.get("gpu_id")
        if torch.cuda.is_available() and gpu_id is not None:
            self.device = torch.device(f"cuda:{gpu_id}")
        self.module = torch.jit.load(model_path, map_location=self.device).eval()
        self.initialized = True
        log.info("modelplane handler: %s on %s", self.metadata.get("name"), self.device)

    # -- decoding -----------------------------------------------------------

    def _array(self, tensor: dict[str, Any]) -> np.ndarray:
        specs = {t["name"]: t for t in self.metadata["inputs"]}
        name = tensor.get("name")
        if name not in specs:
            _fail(f"unknown input {name!r}; the model takes {sorted(specs)}")
        spec = specs[name]
        datatype = str(tensor.get("datatype", "")).upper()
        if datatype != spec["datatype"]:
            _fail(f"input {name!r}: datatype {datatype} given, the model takes {spec['datatype']}")
        try:
            shape = tuple(int(d) for d in tensor["shape"])
            array = np.asarray(tensor["data"], dtype=V2_TO_NUMPY[datatype])
            array = array.reshape(shape)
        except (KeyError, TypeError, ValueError) as exc:
            _fail(f"input {name!r}: data does not fit its shape: {exc}")
        declared = tuple(spec["shape"])
        # zip(strict=) needs Python 3.10; TorchServe images may run older ones.
        mismatch = any(d not in (-1, s) for d, s in zip(declared, shape))  # noqa: B905
        if len(shape) != len(declared) or mismatch:
            _fail(f"input {name!r}: shape {list(shape)} does not match {list(declared)}")
        return array

    def _inputs(self, tensors: list[dict[str, Any]]) -> list[np.ndarray]:
        if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
            _fail("expected V2 inputs: a list of {name, shape, datatype, data}")
        arrays = {t.get("name"): self._array(t) for t in tensors}
        names = [t["name"] for t in self.metadata["inputs"]]
        missing = [n for n in names if n not in arrays]
        if missing:
            _fail(f"missing inputs {missing}")
        return [arrays[n] for n in names]

    # -- inference ----------------------------------------------------------

    def predict(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]
        with torch.inference_mode():
            result = self.module(*tensors)
        if isinstance(result, dict):
            values = [result[t["name"]] for t in self.metadata["outputs"]]
        elif isinstance(result, (tuple, list)):
            values = list(result)
        else:
            values = [result]
        return [v.detach().cpu().numpy() for v in values]

    def _v2_response(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        outputs = self.predict(self._inputs(request["inputs"]))
        response: dict[str, Any] = {
            "model_name": context.manifest["model"]["modelName"],
            "model_version": str(context.manifest["model"].get("modelVersion", "")),
            "outputs": [
                {
                    "name": spec["name"],
                    "datatype": spec["datatype"],
                    "shape": list(value.shape),
                    "data": value.astype(V2_TO_NUMPY[spec["datatype"]]).ravel().tolist(),
                }
                for spec, value in zip(self.metadata["outputs"], outputs)  # noqa: B905
            ],
        }
        if request.get("id"):
            response["id"] = request["id"]
        return response

    def handle(self, data: list[Any] | None, context: Any) -> list[Any]:
        if not self.initialized:
            self.initialize(context)
        if not data:
            # TorchServe calls handle(None, context) once to load the model.
            return []
        if all(isinstance(d, dict) and "datatype" in d and "inputs" not in d for d in data):
            # The kservev2 envelope already unpacked one request's inputs; it
            # names outputs itself and flattens them, so return bare arrays.
            return self.predict(self._inputs(data))
        responses = []
        for row in data:
            body = (row.get("data") or row.get("body")) if isinstance(row, dict) else row
            if isinstance(body, (bytes, bytearray)):
                try:
                    body = json.loads(body.decode("utf-8"))
                except ValueError as exc:
                    _fail(f"request body is not JSON: {exc}")
            if not isinstance(body, dict) or "inputs" not in body:
                _fail('expected a V2 inference request: {"inputs": [...]}')
            responses.append(self._v2_response(body, context))
        return responses


_service = ModelplaneHandler()


def handle(data: list[Any] | None, context: Any) -> list[Any]:
    """TorchServe's entry point (the MAR's `--handler handler.py`)."""
    return _service.handle(data, context)
