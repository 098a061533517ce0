"""Export a trained torch module to a store format, and prove the file computes the same.

`store build` (the bundled models) and `store import` (MLflow) both export a
module and must never write a file that computes something else: each
exporter here writes the file, and `export_checked` then loads it with the
runtime the server uses and compares its outputs with the module's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from predictors.errors import Refused
from predictors.formats import ModelFormat
from predictors.metadata import ModelMetadata, TensorSpec
from predictors.runtimes import RuntimeOptions, load_runtime

if TYPE_CHECKING:
    import torch
    from torch import nn

# Exported ONNX and TorchScript agree with the module to float32 rounding.
TOLERANCE = 1e-5


class ExportError(Refused):
    """The module could not be exported, or the export computes something else."""


def export_onnx(
    module: nn.Module, example: torch.Tensor, input_name: str, output_name: str, path: Path
) -> None:
    import onnx
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,
        optimize=True,
    )
    # The exporter records a stack trace per node, with this checkout's
    # absolute paths: drop that metadata, so the file is the same from any
    # checkout (and tells nothing about the machine that built it).
    exported = onnx.load(str(path))
    for node in exported.graph.node:
        del node.metadata_props[:]
    onnx.save(exported, str(path))


def export_torchscript(
    module: nn.Module, example: torch.Tensor, input_name: str, output_name: str, path: Path
) -> None:
    import torch

    torch.jit.trace(module, example).save(str(path))


def export_torch_export(
    module: nn.Module, example: torch.Tensor, input_name: str, output_name: str, path: Path
) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))


def export_checked(
    module: nn.Module,
    model_format: ModelFormat,
    input_spec: TensorSpec,
    output_spec: TensorSpec,
    folder: Path,
    check: np.ndarray,
) -> Path:
    """Write folder/<model file>, load it as `modelplane serve` would, compare on `check`."""
    import torch

    path = folder / model_format.file_name
    with torch.inference_mode():
        expected = module(torch.from_numpy(check)).detach().cpu().numpy()
    try:
        model_format.load("exporter")(
            module, torch.from_numpy(check[:2]), input_spec.name, output_spec.name, path
        )
        probe = ModelMetadata(
            name="export-check",
            version="0",
            format=model_format.name,
            inputs=[input_spec],
            outputs=[output_spec],
            files={},
        )
        runtime = load_runtime(folder, probe, RuntimeOptions(device="cpu", intra_op_threads=1))
        exported = runtime.run({input_spec.name: check})[output_spec.name]
    except Exception as exc:  # exporters raise many types; all mean the same here
        raise ExportError(f"the model cannot be exported to {model_format.name}: {exc}") from exc
    if exported.shape != expected.shape or not np.allclose(exported, expected, atol=TOLERANCE):
        difference = (
            float(np.abs(exported - expected).max())
            if exported.shape == expected.shape
            else float("inf")
        )
        raise ExportError(
            f"the {model_format.name} export does not compute what the model computes "
            f"(max difference {difference:.3g})"
        )
    return path
