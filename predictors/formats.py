"""The model formats modelplane serves: one named record each, read by everything else.

The runtimes, `store add`'s inspector, `store build` and `store import`'s
exporters, the bench, the CLI's `--format` choices and the TorchServe
packager all look a format up here, so a new format is one record plus the
code it names. Code is named as "module:attribute" and imported on first use:
onnxruntime and torch are slow to import and a process needs at most one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from predictors.errors import Refused


@dataclass(frozen=True)
class ModelFormat:
    #: the `format` in metadata.json
    name: str
    #: the model file in a version folder
    file_name: str
    #: KServe's `modelFormat.name` for InferenceServices of this format
    kserve_format: str
    #: the V2 `platform` of model metadata
    platform: str
    #: what runs it, for people (bench tables, logs)
    engine: str
    #: "module:Class" of its Runtime (predictors.runtimes)
    runtime: str
    #: "module:function" deriving inputs and outputs from a file (predictors.model_inspect)
    inspector: str
    #: "module:function" exporting a torch module to this format (predictors.export), if any
    exporter: str | None
    #: suffix of store names for exports of one trained model (`wine-onnx`, `wine-torch`)
    store_suffix: str
    #: TorchServe can serve it (`modelplane torchserve package`)
    torchserve: bool = False

    def load(self, attribute: str) -> Any:
        """Import what the named field points at, e.g. fmt.load("runtime")."""
        reference = getattr(self, attribute)
        if reference is None:
            raise ValueError(f"format {self.name} has no {attribute}")
        module, _, name = reference.partition(":")
        return getattr(importlib.import_module(module), name)


FORMATS: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat(
            name="onnx",
            file_name="model.onnx",
            kserve_format="onnx",
            platform="onnxruntime_onnx",
            engine="onnxruntime",
            runtime="predictors.runtimes.onnx_runtime:OnnxRuntime",
            inspector="predictors.model_inspect:inspect_onnx",
            exporter="predictors.export:export_onnx",
            store_suffix="onnx",
        ),
        ModelFormat(
            name="torchscript",
            file_name="model.pt",
            kserve_format="pytorch",
            platform="pytorch_torchscript",
            engine="torchscript",
            runtime="predictors.runtimes.torch_runtime:TorchScriptRuntime",
            inspector="predictors.model_inspect:inspect_torchscript",
            exporter="predictors.export:export_torchscript",
            store_suffix="torch",
            torchserve=True,
        ),
        ModelFormat(
            name="torch_export",
            file_name="model.pt2",
            kserve_format="pytorch",
            platform="pytorch_torch_export",
            engine="torch.export",
            runtime="predictors.runtimes.torch_runtime:TorchExportRuntime",
            inspector="predictors.model_inspect:inspect_torch_export",
            exporter="predictors.export:export_torch_export",
            store_suffix="torch-export",
        ),
    )
}


class UnknownFormat(Refused):
    pass


def get_format(name: str) -> ModelFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownFormat(
            f"unknown format {name!r}; expected one of {', '.join(FORMATS)}"
        ) from None


def exportable() -> list[str]:
    """Formats a trained torch module can be exported to (`store import --format`)."""
    return [f.name for f in FORMATS.values() if f.exporter is not None]
