"""Rebuild the bundled model store: train, export to ONNX and TorchScript, write metadata.

Deterministic: fixed seed, one thread, deterministic kernels, so a rebuild
with the same library versions gives the same weights and accuracy.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from predictors.metadata import BatchingConfig, ModelMetadata, TensorSpec
from predictors.model_store import sha256_of
from predictors.training import datasets
from predictors.training.networks import DigitsCNN, WineMLP

SEED = 20261123
VERSION = "1"


@dataclass(frozen=True)
class Recipe:
    family: str  # the store holds <family>-onnx and <family>-torch
    input_name: str
    input_shape: tuple[int, ...]  # without the batch axis
    epochs: int
    lr: float
    split: Callable[[int], datasets.Split]
    network: Callable[[datasets.Split], nn.Module]


RECIPES = [
    Recipe("digits", "image", (1, 8, 8), 40, 2e-3, datasets.digits, lambda s: DigitsCNN()),
    Recipe(
        "wine",
        "features",
        (13,),
        200,
        1e-2,
        datasets.wine,
        lambda s: WineMLP(
            torch.from_numpy(s.x_train.mean(axis=0)), torch.from_numpy(s.x_train.std(axis=0))
        ),
    ),
]


def train(recipe: Recipe, split: datasets.Split, progress: Progress) -> nn.Module:
    torch.manual_seed(SEED)
    model = recipe.network(split)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.from_numpy(split.x_train)
    y = torch.from_numpy(split.y_train)
    generator = torch.Generator().manual_seed(SEED)
    task = progress.add_task(f"train {recipe.family}", total=recipe.epochs)
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            optimiser.zero_grad()
            loss = loss_fn(model.logits(x[idx]), y[idx])
            loss.backward()
            optimiser.step()
        progress.advance(task)
    return model.eval()


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(axis=1) == labels).mean())


def export_onnx(model: nn.Module, example: torch.Tensor, input_name: str, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=["probabilities"],
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


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    traced = torch.jit.trace(model, example)
    traced.save(str(path))


def build_family(recipe: Recipe, out: Path, progress: Progress) -> list[ModelMetadata]:
    import onnxruntime as ort
    import sklearn

    split = recipe.split(SEED)
    model = train(recipe, split, progress)
    example = torch.from_numpy(split.x_test[:2])
    with torch.inference_mode():
        torch_probs = model(torch.from_numpy(split.x_test)).numpy()
    acc = accuracy(torch_probs, split.y_test)

    versions = {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }
    inputs = [TensorSpec(recipe.input_name, "FP32", (-1, *recipe.input_shape))]
    outputs = [TensorSpec("probabilities", "FP32", (-1, len(split.labels)))]
    written = []
    for suffix, fmt, file_name in (
        ("onnx", "onnx", "model.onnx"),
        ("torch", "torchscript", "model.pt"),
    ):
        name = f"{recipe.family}-{suffix}"
        version_dir = out / name / VERSION
        version_dir.mkdir(parents=True)
        if fmt == "onnx":
            export_onnx(model, example, recipe.input_name, version_dir / file_name)
            session = ort.InferenceSession(str(version_dir / file_name))
            exported = session.run(None, {recipe.input_name: split.x_test})[0]
        else:
            export_torchscript(model, example, version_dir / file_name)
            loaded = torch.jit.load(str(version_dir / file_name))
            with torch.inference_mode():
                exported = loaded(torch.from_numpy(split.x_test)).numpy()
        # The export must compute what the trained model computes.
        np.testing.assert_allclose(exported, torch_probs, atol=1e-5)
        meta = ModelMetadata(
            name=name,
            version=VERSION,
            format=fmt,
            inputs=inputs,
            outputs=outputs,
            files={file_name: sha256_of(version_dir / file_name)},
            labels=split.labels,
            max_batch_size=256,
            batching=BatchingConfig(enabled=True, max_batch_size=32, max_queue_delay_ms=0.0),
            metrics={
                "heldout_accuracy": round(acc, 6),
                "heldout_samples": float(len(split.y_test)),
            },
            framework_versions=versions,
            seed=SEED,
            provenance={
                "trained_by": "modelplane store build",
                "dataset": f"sklearn.datasets.load_{recipe.family}",
                "split": f"train_test_split(test_size={datasets.TEST_FRACTION}, "
                f"random_state={SEED}, stratify=y)",
                "epochs": recipe.epochs,
                "learning_rate": recipe.lr,
            },
        )
        meta.write(version_dir)
        written.append(meta)
    return written


def build_store(store: Path, families: list[str] | None = None) -> list[ModelMetadata]:
    """Rebuild the bundled models into store, replacing only those models."""
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    recipes = [r for r in RECIPES if families is None or r.family in families]
    written: list[ModelMetadata] = []
    try:
        store.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(dir=store, prefix=".build-") as tmp,
            Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=False
            ) as progress,
        ):
            staging = Path(tmp)
            for recipe in recipes:
                written += build_family(recipe, staging, progress)
            for meta in written:
                target = store / meta.name / meta.version
                if target.exists():
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                (staging / meta.name / meta.version).rename(target)
    finally:
        torch.set_num_threads(threads)
    return written
