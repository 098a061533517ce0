"""ONNX models on onnxruntime: CUDA when a GPU and onnxruntime-gpu are there, else CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from predictors.metadata import ModelMetadata
from predictors.runtimes import Runtime, RuntimeOptions, available_cpus

log = logging.getLogger(__name__)


def choose_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    wants_gpu = device == "auto" or device.startswith("cuda")
    if wants_gpu and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device.startswith("cuda"):
        raise RuntimeError(
            "device cuda was asked for, but onnxruntime has no CUDAExecutionProvider "
            f"(available: {available}); install the 'gpu' extra (onnxruntime-gpu)"
        )
    return ["CPUExecutionProvider"]


def session_options(options: RuntimeOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    # One request runs at a time per session in the batcher, so all cores go
    # to intra-op parallelism; inter-op threads only help branchy graphs.
    so.intra_op_num_threads = options.intra_op_threads or available_cpus()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Memory patterns pay off because batch shapes repeat.
    so.enable_mem_pattern = True
    so.enable_cpu_mem_arena = True
    return so


class OnnxRuntime(Runtime):
    def __init__(self, model_file: Path, metadata: ModelMetadata, options: RuntimeOptions):
        providers = choose_providers(options.device)
        self.session = ort.InferenceSession(
            str(model_file), sess_options=session_options(options), providers=providers
        )
        used = self.session.get_providers()
        self.device = "cuda:0" if used[0] == "CUDAExecutionProvider" else "cpu"
        self._output_names = [o.name for o in metadata.outputs]
        graph_outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self._output_names if n not in graph_outputs]
        if missing:
            raise ValueError(f"outputs {missing} from metadata.json are not in the ONNX graph")
        log.info("onnx model %s on %s (providers %s)", metadata.name, self.device, used)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self._output_names, inputs)
        return dict(zip(self._output_names, results, strict=True))
