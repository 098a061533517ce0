"""Torch models (TorchScript and torch.export programs): cuda when available, else CPU.

Both take tensors in metadata order and return a tensor or a tuple of them;
only loading differs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from predictors.metadata import ModelMetadata
from predictors.runtimes import Runtime, RuntimeOptions, intra_op_threads
from predictors.runtimes.cuda import cuda_devices, say_cpu_fallback
from predictors.runtimes.torch_files import load_exported_program, load_torchscript

log = logging.getLogger(__name__)


def choose_device(device: str) -> torch.device:
    if device == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda:0" if device == "auto" else device)
    count, reason = cuda_devices()
    if count:
        reason = f"torch {torch.__version__} cannot use the GPU the driver reports"
    if device.startswith("cuda"):
        raise RuntimeError(f"device {device} was asked for, but {reason}")
    say_cpu_fallback(reason)
    return torch.device("cpu")


def set_torch_threads(options: RuntimeOptions) -> None:
    """Intra-op threads as the compute policy says; one inter-op thread.

    Both are process-wide in torch: the last Torch model loaded sets them, and
    every model gets the same values from the same settings. Inter-op threads
    only run TorchScript `fork`s, which served models do not use, and torch
    would otherwise start one per CPU beside the intra-op pool. torch allows
    setting them once, before any inter-op work; a second model finds them set.
    """
    torch.set_num_threads(intra_op_threads(options.intra_op_threads))
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work has started
            log.debug("torch inter-op threads stay at %d", torch.get_num_interop_threads())


class TorchRuntime(Runtime):
    kind = "torch"

    def __init__(self, model_file: Path, metadata: ModelMetadata, options: RuntimeOptions):
        self._device = choose_device(options.device)
        self.device = str(self._device)
        if self._device.type == "cpu":
            set_torch_threads(options)
        self.module = self.load_module(model_file, self._device)
        self._input_names = [t.name for t in metadata.inputs]
        self._output_names = [t.name for t in metadata.outputs]
        log.info("%s model %s on %s", self.kind, metadata.name, self.device)

    @staticmethod
    def load_module(model_file: Path, device: torch.device) -> Callable[..., object]:
        raise NotImplementedError

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Arrays decoded from request bytes are read-only views; torch needs
        # writable memory, so those (and only those) are copied.
        tensors = [
            torch.from_numpy(a if a.flags.writeable else a.copy()).to(self._device)
            for a in (inputs[n] for n in self._input_names)
        ]
        with torch.inference_mode():
            result = self.module(*tensors)
        if isinstance(result, dict):
            values = [result[n] for n in self._output_names]
        elif isinstance(result, (tuple, list)):
            values = list(result)
        else:
            values = [result]
        if len(values) != len(self._output_names):
            raise RuntimeError(
                f"model returned {len(values)} outputs, metadata.json declares "
                f"{len(self._output_names)}"
            )
        return {
            n: v.detach().cpu().numpy() for n, v in zip(self._output_names, values, strict=True)
        }


class TorchScriptRuntime(TorchRuntime):
    kind = "torchscript"

    @staticmethod
    def load_module(model_file: Path, device: torch.device) -> Callable[..., object]:
        return load_torchscript(model_file, device)


class TorchExportRuntime(TorchRuntime):
    """A torch.export program (.pt2): TorchScript's successor in torch 2.x."""

    kind = "torch.export"

    @staticmethod
    def load_module(model_file: Path, device: torch.device) -> Callable[..., object]:
        # The program was exported in eval mode; its module has no eval().
        return load_exported_program(model_file).module().to(device)
