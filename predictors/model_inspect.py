"""Derive a model's V2 inputs and outputs from the file a user brings.

ONNX files describe their own tensors. TorchScript files do not, so the
user states input shapes and datatypes and a trial run tells the outputs.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from predictors.errors import Refused
from predictors.formats import UnknownFormat, get_format
from predictors.metadata import MetadataError, ModelMetadata, TensorSpec, check_relative_file
from predictors.protocol.datatypes import NUMPY_TO_V2, V2_TO_NUMPY


class InspectError(Refused):
    """The file is not a model that modelplane can serve; the message says why."""


@dataclass(frozen=True)
class TorchInput:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 on the batch axis


def parse_torch_inputs(names: list[str], shapes: list[str], dtypes: list[str]) -> list[TorchInput]:
    """`--input-name/--input-shape/--input-dtype`, once per input, as TorchInputs."""
    if not shapes:
        return []
    names = names or [f"input__{i}" for i in range(len(shapes))]
    dtypes = dtypes or ["FP32"] * len(shapes)
    if not len(names) == len(dtypes) == len(shapes):
        raise InspectError("give --input-name and --input-dtype once per --input-shape")
    inputs = []
    for name, dtype, shape in zip(names, dtypes, shapes, strict=True):
        try:
            dims = tuple(int(d) for d in shape.split(","))
        except ValueError as exc:
            raise InspectError(f"--input-shape {shape!r}: use integers like -1,1,8,8") from exc
        inputs.append(TorchInput(name, dtype.upper(), dims))
    return inputs


@dataclass(frozen=True)
class Hints:
    """What the user said about the file; each format's inspector uses what it needs."""

    #: TorchScript: the inputs (files do not record them)
    torch_inputs: list[TorchInput] = field(default_factory=list)
    #: torch.export: names for the program's inputs (default: the graph's)
    input_names: list[str] = field(default_factory=list)
    #: TorchScript, torch.export: names for the outputs
    output_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Inspected:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    framework_versions: dict[str, str]
    #: files the model file needs beside it (ONNX external data), relative to it
    extra_files: list[str] = field(default_factory=list)


def detect_format(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head.startswith(b"PK"):
        return "onnx"  # a protobuf
    # TorchScript and torch.export archives are both zip files; the latter
    # carries an `archive_format` record.
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return "torchscript"  # torch's loader then says what is wrong
    return "torch_export" if any(n.endswith("/archive_format") for n in names) else "torchscript"


def inspect_onnx(path: Path, hints: Hints) -> Inspected:
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise InspectError(f"{path.name} is not a valid ONNX model: {exc}") from exc
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InspectError(f"onnxruntime cannot load {path.name}: {exc}") from exc

    def spec(arg: ort.NodeArg) -> TensorSpec:
        datatype = _ORT_TYPES.get(arg.type)
        if datatype is None:
            raise InspectError(
                f"tensor '{arg.name}' has type {arg.type}, which V2 serving here lacks"
            )
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
        return TensorSpec(arg.name, datatype, shape)

    inputs = [spec(a) for a in session.get_inputs()]
    outputs = [spec(a) for a in session.get_outputs()]
    _trial_run_onnx(session, inputs)
    versions = {
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "opset": str(max(o.version for o in model.opset_import)),
    }
    return Inspected(inputs, outputs, versions, external_data_files(path))


def external_data_files(path: Path) -> list[str]:
    """The external-data files of an ONNX model (large weights kept beside the graph)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    found = []
    for tensor in _get_all_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        try:
            check_relative_file(location)
        except MetadataError as exc:
            raise InspectError(f"tensor '{tensor.name}': external data {exc}") from exc
        if location not in found:
            found.append(location)
    return found


_ORT_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def _trial_inputs(inputs: list[TensorSpec] | list[TorchInput], rows: int) -> dict[str, np.ndarray]:
    # BYTES: empty strings, as text (what validation hands runtimes).
    return {
        t.name: np.full(
            [rows if d == -1 else d for d in t.shape],
            "" if t.datatype == "BYTES" else 0,
            V2_TO_NUMPY[t.datatype],
        )
        for t in inputs
    }


def _trial_run_onnx(session: object, inputs: list[TensorSpec]) -> None:
    try:
        session.run(None, _trial_inputs(inputs, 2))  # type: ignore[attr-defined]
    except Exception as exc:
        raise InspectError(f"a trial run with zeros failed: {exc}") from exc


def inspect_torchscript(path: Path, hints: Hints) -> Inspected:
    import torch

    from predictors.runtimes.torch_files import UnsafeModel, load_torchscript

    torch_inputs, output_names = hints.torch_inputs, hints.output_names
    if not torch_inputs:
        raise InspectError(
            "TorchScript files do not record their inputs: give --input-shape (and "
            "--input-dtype, --input-name), e.g. --input-shape=-1,1,8,8"
        )
    try:
        module = load_torchscript(path, torch.device("cpu"))
    except UnsafeModel as exc:
        raise InspectError(str(exc)) from exc
    except Exception as exc:
        raise InspectError(f"{path.name} is not a TorchScript model: {exc}") from exc
    rows = 2
    arrays = _trial_inputs(torch_inputs, rows)
    try:
        with torch.inference_mode():
            result = module(*(torch.from_numpy(arrays[t.name]) for t in torch_inputs))
    except Exception as exc:
        raise InspectError(
            f"a trial run with inputs {[list(t.shape) for t in torch_inputs]} failed: {exc}"
        ) from exc
    values = list(result) if isinstance(result, tuple | list) else [result]
    if not all(isinstance(v, torch.Tensor) for v in values):
        raise InspectError("the model must return a tensor or a tuple of tensors")
    names = output_names or [f"output__{i}" for i in range(len(values))]
    if len(names) != len(values):
        raise InspectError(
            f"the model returns {len(values)} outputs, {len(names)} names were given"
        )
    batched = any(d == -1 for t in torch_inputs for d in t.shape[:1])
    outputs = []
    for name, value in zip(names, values, strict=True):
        array = value.detach().numpy()
        shape = list(array.shape)
        if batched and shape and shape[0] == rows:
            shape[0] = -1
        outputs.append(TensorSpec(name, NUMPY_TO_V2[array.dtype], tuple(shape)))
    inputs = [TensorSpec(t.name, t.datatype, t.shape) for t in torch_inputs]
    return Inspected(inputs, outputs, {"torch": torch.__version__})


def inspect_torch_export(path: Path, hints: Hints) -> Inspected:
    """A torch.export program records its tensors; dynamic dimensions become -1."""
    import torch

    from predictors.runtimes.torch_files import UnsafeModel, load_exported_program

    input_names, output_names = hints.input_names, hints.output_names
    try:
        program = load_exported_program(path)
    except UnsafeModel as exc:
        raise InspectError(str(exc)) from exc
    except Exception as exc:
        raise InspectError(f"{path.name} is not a torch.export program: {exc}") from exc

    def specs(values: list[tuple[str, Any]], names: list[str], kind: str) -> list[TensorSpec]:
        if names and len(names) != len(values):
            raise InspectError(f"the program has {len(values)} {kind}s, {len(names)} names given")
        found = []
        for index, (default, value) in enumerate(values):
            shape = tuple(d if isinstance(d, int) else -1 for d in value.shape)
            dtype = torch.empty(0, dtype=value.dtype).numpy().dtype
            found.append(TensorSpec(names[index] if names else default, NUMPY_TO_V2[dtype], shape))
        return found

    nodes = {n.name: n for n in program.graph.nodes}
    user_inputs = [(n, nodes[n].meta["val"]) for n in program.graph_signature.user_inputs]
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    returned = output_node.args[0]
    returned = returned if isinstance(returned, tuple | list) else (returned,)
    user_outputs = [(str(n), n.meta["val"]) for n in returned]
    inputs = specs(user_inputs, input_names, "input")
    outputs = specs(user_outputs, output_names, "output")
    try:
        arrays = _trial_inputs(inputs, 2)
        with torch.inference_mode():
            program.module()(*(torch.from_numpy(arrays[t.name]) for t in inputs))
    except Exception as exc:
        raise InspectError(f"a trial run with zeros failed: {exc}") from exc
    return Inspected(inputs, outputs, {"torch": torch.__version__})


def metadata_for(
    path: Path,
    fmt: str | None = None,
    hints: Hints | None = None,
    labels: list[str] | None = None,
) -> ModelMetadata:
    """Metadata for a model file: its format (given or detected) and its tensors."""
    if not path.is_file():
        raise InspectError(f"{path} is not a file")
    name = fmt or detect_format(path)
    try:
        model_format = get_format(name)
    except UnknownFormat as exc:
        raise InspectError(str(exc)) from exc
    inspect = model_format.load("inspector")
    found: Inspected = inspect(path, hints or Hints())
    return ModelMetadata(
        name="",
        version="",
        format=model_format.name,
        inputs=found.inputs,
        outputs=found.outputs,
        # The model file's checksum is taken when it is copied; these are the
        # files that go with it, copied and checksummed alike (store add).
        files={name: "" for name in found.extra_files},
        labels=labels or [],
        framework_versions=found.framework_versions,
        provenance={"imported_from": path.name, "by": "modelplane store add"},
    )
