"""ONNX models on onnxruntime: CUDA when a GPU and onnxruntime-gpu are there, else CPU.

Session settings are chosen for a model server, not for a notebook: see
`session_options` (threads, spinning, graph optimisation, memory pattern),
`OnnxRuntime._run_cuda` (IO binding) and `to_fp16` (half precision on CUDA).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from predictors.metadata import ModelMetadata
from predictors.runtimes import Runtime, RuntimeOptions, intra_op_threads, spinning
from predictors.runtimes.cuda import cuda_devices, say_cpu_fallback

log = logging.getLogger(__name__)

# Ops whose float inputs or outputs have fixed meanings (scales, thresholds,
# sampling) or no fp16 kernel on the CUDA EP; a graph with any of them stays fp32.
FP16_BLOCKED_OPS = frozenset(
    {
        "ArrayFeatureExtractor",
        "Binarizer",
        "CastMap",
        "CategoryMapper",
        "DictVectorizer",
        "FeatureVectorizer",
        "Imputer",
        "LabelEncoder",
        "LinearClassifier",
        "LinearRegressor",
        "Normalizer",
        "OneHotEncoder",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "Resize",
        "RoiAlign",
        "SVMClassifier",
        "SVMRegressor",
        "Scaler",
        "TopK",
        "TreeEnsembleClassifier",
        "TreeEnsembleRegressor",
        "ZipMap",
        "NonMaxSuppression",
        "Upsample",
        "EyeLike",
        "Multinomial",
    }
)


def choose_providers(device: str) -> list[str]:
    wants_gpu = device == "auto" or device.startswith("cuda")
    if not wants_gpu:
        return ["CPUExecutionProvider"]
    count, reason = cuda_devices()
    available = ort.get_available_providers()
    if count and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if count:
        reason = (
            "onnxruntime has no CUDAExecutionProvider (available: "
            f"{', '.join(available)}); install the 'gpu' extra (onnxruntime-gpu)"
        )
    if device.startswith("cuda"):
        raise RuntimeError(f"device {device} was asked for, but {reason}")
    say_cpu_fallback(reason)
    return ["CPUExecutionProvider"]


def cuda_device_id(device: str) -> int:
    """`cuda:1` -> 1; `cuda` and `auto` -> 0."""
    _, _, index = device.partition(":")
    try:
        return int(index) if index else 0
    except ValueError as exc:
        raise RuntimeError(f"device {device!r}: expected cuda or cuda:N") from exc


def provider_options(providers: list[str], device: str) -> list[dict[str, Any]]:
    options: list[dict[str, Any]] = []
    for provider in providers:
        if provider == "CUDAExecutionProvider":
            options.append(
                {
                    "device_id": cuda_device_id(device),
                    # Batch sizes vary request to request; an exhaustive cuDNN
                    # search would run again for every new shape, mid-request.
                    "cudnn_conv_algo_search": "HEURISTIC",
                    # Copies on the compute stream: no cross-stream syncs.
                    "do_copy_in_default_stream": True,
                }
            )
        else:
            options.append({})
    return options


def session_options(options: RuntimeOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    threads = intra_op_threads(options.intra_op_threads)
    # Every run (one request, or a batch) may use all intra-op threads;
    # concurrent runs (batching off) share the session's pool. Inter-op
    # threads only help branchy graphs, and would be more threads per core.
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning workers hold a core while they wait for the next op (see spinning).
    spin = spinning(options.spin, threads)
    if spin == "off":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spin == "run":
        so.add_session_config_entry("session.intra_op.allow_spinning", "1")
        so.add_session_config_entry("session.force_spinning_stop", "1")
    # All graph optimisations (constant folding, fusions, layout changes): the
    # one-time cost is at load, before readiness, and every request gains.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Memory patterns are planned per input shape and reused; batch shapes
    # repeat (1..max_batch_size), so the plans pay off and stay bounded.
    so.enable_mem_pattern = True
    so.enable_cpu_mem_arena = True
    return so


class OnnxRuntime(Runtime):
    def __init__(self, model_file: Path, metadata: ModelMetadata, options: RuntimeOptions):
        providers = choose_providers(options.device)
        on_cuda = providers[0] == "CUDAExecutionProvider"
        model: str | bytes = str(model_file)
        self.fp16 = False
        if options.fp16 and not on_cuda:
            log.warning("model %s: --fp16 applies on CUDA only; running fp32", metadata.name)
        elif options.fp16:
            converted = to_fp16(onnx.load(str(model_file)))
            if converted is None:
                log.warning("model %s: graph not convertible to fp16; running fp32", metadata.name)
            else:
                model, self.fp16 = converted.SerializeToString(), True
        self.session = ort.InferenceSession(
            model,
            sess_options=session_options(options),
            providers=providers,
            provider_options=provider_options(providers, options.device),
        )
        used = self.session.get_providers()
        self._cuda = used[0] == "CUDAExecutionProvider"
        if options.device.startswith("cuda") and not self._cuda:
            # onnxruntime falls back to the CPU by itself when CUDA fails to start.
            raise RuntimeError(
                f"device {options.device} was asked for, but onnxruntime could not start "
                "its CUDA provider (see its messages above); running on cpu was not asked for"
            )
        self._device_id = cuda_device_id(options.device) if self._cuda else 0
        self.device = f"cuda:{self._device_id}" if self._cuda else "cpu"
        self._output_names = [o.name for o in metadata.outputs]
        graph_outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self._output_names if n not in graph_outputs]
        if missing:
            raise ValueError(f"outputs {missing} from metadata.json are not in the ONNX graph")
        log.info(
            "onnx model %s on %s (providers %s, fp16 %s)",
            metadata.name,
            self.device,
            used,
            self.fp16,
        )

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._cuda:
            return self._run_cuda(inputs)
        results = self.session.run(self._output_names, inputs)
        return dict(zip(self._output_names, results, strict=True))

    def _run_cuda(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """IO binding: inputs go to the GPU once and outputs are allocated there.

        Plain `run` stages every input and output through extra host buffers;
        binding copies each input to the device once and lets the CUDA EP
        write outputs in place. A binding per call, because the unbatched
        path runs calls from several threads at once.
        """
        binding = self.session.io_binding()
        for name, array in inputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(array), "cuda", self._device_id
            )
            binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            binding.bind_output(name, "cuda", self._device_id)
        self.session.run_with_iobinding(binding)
        results = binding.copy_outputs_to_cpu()
        return dict(zip(self._output_names, results, strict=True))


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of the graph computing in float16, with its float32 inputs and outputs kept.

    Clients keep sending FP32 (metadata.json does not change); a Cast after
    each float input and before each float output does the conversion on the
    device. Weights and float constants become float16, which halves their
    memory and lets the CUDA EP use tensor cores. Returns None for graphs
    this simple conversion cannot handle safely (subgraphs, ops in
    FP16_BLOCKED_OPS, non-default domains), which then stay fp32.
    """
    graph = model.graph
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in FP16_BLOCKED_OPS:
            return None
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        ):
            return None
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph

    def half(tensor: TensorProto) -> TensorProto:
        if tensor.data_type != TensorProto.FLOAT:
            return tensor
        array = numpy_helper.to_array(tensor).astype(np.float16)
        return numpy_helper.from_array(array, tensor.name)

    for index, initializer in enumerate(graph.initializer):
        graph.initializer[index].CopyFrom(half(initializer))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                attribute.t.CopyFrom(half(attribute.t))
        # A Cast to float inside the graph would mix float32 into fp16 maths.
        if node.op_type == "Cast":
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                    attribute.i = TensorProto.FLOAT16

    # Float inputs: Cast to fp16 first, and consumers read the cast.
    initializers = {i.name for i in graph.initializer}
    casts_in = []
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        if value.name in initializers:
            # An initializer listed as input (older exporters): now fp16 itself.
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
            continue
        cast_name = f"{value.name}__fp16"
        for node in graph.node:
            _rename(node.input, value.name, cast_name)
        for output in graph.output:
            if output.name == value.name:
                return None  # an input passed straight through: leave the graph alone
        casts_in.append(
            helper.make_node(
                "Cast", [value.name], [cast_name], to=TensorProto.FLOAT16, name=cast_name
            )
        )
    # Float outputs: computed in fp16 under a new name, cast back to fp32.
    casts_out = []
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{value.name}__fp16"
        for node in graph.node:
            _rename(node.output, value.name, inner)
            _rename(node.input, value.name, inner)
        casts_out.append(
            helper.make_node(
                "Cast", [inner], [value.name], to=TensorProto.FLOAT, name=f"{value.name}__fp32"
            )
        )
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    # Intermediate types were float32; let onnxruntime infer them afresh.
    del graph.value_info[:]
    try:
        onnx.checker.check_model(converted)
        return onnx.shape_inference.infer_shapes(converted, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        log.warning("fp16 conversion failed its check: %s", exc)
        return None


def _rename(names: Any, old: str, new: str) -> None:
    """Point every use of tensor `old` in a node's input or output list at `new`."""
    for i, name in enumerate(names):
        if name == old:
            names[i] = new
