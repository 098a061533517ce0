"""Rebuild the bundled model store: train, export to ONNX and TorchScript, write metadata.

Deterministic: fixed seed, one thread, deterministic kernels, so a rebuild
with the same library versions gives the same weights and accuracy.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from predictors.atomic import atomic_folder
from predictors.drift import DriftProfile, build_profile
from predictors.export import export_checked
from predictors.formats import FORMATS
from predictors.metadata import BatchingConfig, ModelMetadata, TensorSpec
from predictors.model_store import sha256_of
from predictors.training import datasets
from predictors.training.networks import Classifier, DigitsCNN, WineMLP

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
    network: Callable[[datasets.Split], Classifier]


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


def train(recipe: Recipe, split: datasets.Split, progress: Progress) -> Classifier:
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


def feature_names(family: str) -> list[str] | None:
    """The columns' names of a tabular family (the drift series' `feature` label)."""
    if family != "wine":
        return None
    from sklearn.datasets import load_wine

    return [str(n) for n in load_wine().feature_names]


def drift_profile(recipe: Recipe, split: datasets.Split) -> DriftProfile:
    """The reference profile of the rows the model was trained on (predictors.drift)."""
    spec = TensorSpec(recipe.input_name, "FP32", (-1, *recipe.input_shape))
    names = feature_names(recipe.family)
    return build_profile(
        {spec.name: split.x_train},
        [spec],
        source=f"training split of sklearn.datasets.load_{recipe.family} "
        f"(random_state={SEED}), {len(split.x_train)} rows",
        feature_names={spec.name: names} if names else None,
    )


def build_family(recipe: Recipe, out: Path, progress: Progress) -> list[ModelMetadata]:
    import onnxruntime as ort
    import sklearn

    split = recipe.split(SEED)
    model = train(recipe, split, progress)
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
    profile = drift_profile(recipe, split)
    written = []
    for model_format in (FORMATS["onnx"], FORMATS["torchscript"]):
        name = f"{recipe.family}-{model_format.store_suffix}"
        version_dir = out / name / VERSION
        version_dir.mkdir(parents=True)
        # Checked on the held-out set: the export computes what was evaluated.
        model_file = export_checked(
            model, model_format, inputs[0], outputs[0], version_dir, split.x_test
        )
        meta = ModelMetadata(
            name=name,
            version=VERSION,
            format=model_format.name,
            inputs=inputs,
            outputs=outputs,
            files={model_file.name: sha256_of(model_file)},
            labels=split.labels,
            max_batch_size=256,
            batching=BatchingConfig(enabled=True, max_rows=32, max_queue_delay_ms=0.0),
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
            drift_profile=profile,
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
            # Train and export everything first: a failure changes nothing.
            staging = Path(tmp)
            for recipe in recipes:
                written += build_family(recipe, staging, progress)
            for meta in written:
                with atomic_folder(store / meta.name / meta.version, replace=True) as target:
                    for item in (staging / meta.name / meta.version).iterdir():
                        item.rename(target / item.name)
    finally:
        torch.set_num_threads(threads)
    return written
