"""A compute-bound model for the bench, built at bench time: a CNN of 1.2M parameters.

The bundled models run in 10-120 us, so on them the bench measures protocol
overhead. This one runs for about 2 ms per image on two cores (about 140
MFLOP on a [1,3,64,64] input), so the server's compute policy (threads,
parallel runs, batching) decides its figures. Its weights are random (seeded):
the bench needs the arithmetic, not the answers, and nothing is downloaded.
It goes into a store through the store's own functions (exported and checked
by predictors.export, tensors read by predictors.model_inspect, written by
model_store.add_model), so the servers load it like any other model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

COMPUTE_MODEL = "cnn-onnx"
#: the Torch twin (TorchScript), for `--models cnn-torch`
COMPUTE_MODEL_TORCH = "cnn-torch"
COMPUTE_MODELS = {COMPUTE_MODEL: "onnx", COMPUTE_MODEL_TORCH: "torchscript"}
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
INPUT_SHAPE = (3, 64, 64)
CLASSES = 10
SEED = 0


def compute_cnn() -> nn.Module:
    """Four conv blocks (conv, batch norm, ReLU, pool), a last conv, a two-layer head."""
    import torch
    from torch import nn

    def block(inputs: int, outputs: int) -> list[nn.Module]:
        return [
            nn.Conv2d(inputs, outputs, 3, padding=1),
            nn.BatchNorm2d(outputs),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    class ComputeCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                *block(3, 32), *block(32, 64), *block(64, 128), *block(128, 256),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            )  # fmt: skip
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(256, 768), nn.ReLU(), nn.Linear(768, CLASSES)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.head(self.features(x)), dim=1)

    torch.manual_seed(SEED)
    return ComputeCNN().eval()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def add_compute_model(store: Path, name: str = COMPUTE_MODEL) -> Path:
    """Export the CNN in `name`'s format into `store` as version 1; its folder."""
    import contextlib
    import io
    import logging
    import tempfile
    import warnings

    import numpy as np

    from predictors.export import export_checked
    from predictors.formats import get_format
    from predictors.metadata import TensorSpec
    from predictors.model_inspect import Hints, TorchInput, metadata_for
    from predictors.model_store import add_model

    model_format = get_format(COMPUTE_MODELS[name])
    module = compute_cnn()
    input_spec = TensorSpec(INPUT_NAME, "FP32", (-1, *INPUT_SHAPE))
    output_spec = TensorSpec(OUTPUT_NAME, "FP32", (-1, CLASSES))
    check = np.random.default_rng(SEED).random((4, *INPUT_SHAPE), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="mp-cnn-") as tmp:
        # The exporter narrates each step on stdout and logs what it skips (torchvision's
        # ops), which would land in the bench's report.
        exporter_log = logging.getLogger("torch.onnx")
        level = exporter_log.level
        exporter_log.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                path = export_checked(
                    module, model_format, input_spec, output_spec, Path(tmp), check
                )
        finally:
            exporter_log.setLevel(level)
        hints = Hints(
            torch_inputs=[TorchInput(INPUT_NAME, "FP32", input_spec.shape)],
            output_names=[OUTPUT_NAME],
        )
        meta = metadata_for(path, model_format.name, hints)
        meta.seed = SEED
        meta.provenance = {
            "by": "modelplane bench",
            "network": "ComputeCNN (predictors/bench/compute_model.py), random weights",
            "parameters": parameter_count(module),
        }
        return add_model(store, name, path, "1", meta)


def bench_store(source: Path, models: list[str], target: Path) -> Path:
    """A store holding `models`: the compute models built here, the others linked from `source`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in models:
        if name in COMPUTE_MODELS:
            add_compute_model(target, name)
        elif (source / name).is_dir():
            # A link, not a copy: the servers read the store's own files.
            (target / name).symlink_to((source / name).resolve(), target_is_directory=True)
        else:
            raise ValueError(
                f"model {name!r} is neither in {source} nor one the bench builds "
                f"({', '.join(COMPUTE_MODELS)})"
            )
    return target
