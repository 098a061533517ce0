"""`modelplane store import`: export a registered MLflow version into the model store.

`models:/NAME@ALIAS` or `models:/NAME/VERSION` becomes `<name>-<suffix>/<version>`
per format (`mlflow-wine-onnx/3`, `mlflow-wine-torch/3`), <version> being the
registry's, with the run id, version, aliases and run metrics in
metadata.json, and the drift profile the training run logged (`modelplane
train` logs one; a run without it gives a store entry without one, whose
model metadata then says drift is not measured). Each export is checked
against the registered model's own outputs before it is renamed into place;
importing a version that is already there changes nothing.
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from predictors.atomic import atomic_folder
from predictors.drift import DriftProfile, ProfileError
from predictors.export import ExportError, export_checked
from predictors.formats import ModelFormat, exportable, get_format
from predictors.metadata import BatchingConfig, MetadataError, ModelMetadata, TensorSpec
from predictors.mlflow import tracking
from predictors.mlflow.tracking import RegistryError, Resolved
from predictors.mlflow.train import DRIFT_ARTIFACT, METADATA_KEY
from predictors.model_store import NAME_RE, sha256_of, verify


@dataclass(frozen=True)
class Imported:
    name: str  # store name, e.g. mlflow-wine-onnx
    version: str
    format: str
    path: Path
    changed: bool  # False: this version was already in the store


def import_model(
    uri: str,
    store: Path,
    formats: list[str] | None = None,
    name: str | None = None,
    tracking_uri: str | None = None,
) -> list[Imported]:
    """Export a registered model version into `store`, one entry per format."""
    formats = formats or ["onnx", "torchscript"]
    unknown = sorted(set(formats) - set(exportable()))
    if unknown:
        raise RegistryError(f"unknown format {unknown}; choose from {exportable()}")
    uri_used = tracking.tracking_uri(tracking_uri)
    mlflow_client = tracking.client(uri_used)
    resolved = tracking.resolve(mlflow_client, uri)
    base = name or resolved.name
    targets = {fmt: f"{base}-{get_format(fmt).store_suffix}" for fmt in formats}
    for store_name in targets.values():
        if not NAME_RE.match(store_name):
            raise RegistryError(
                f"store name {store_name!r} is not a Kubernetes name (lowercase letters, digits, "
                "'-'); give --name"
            )
    paths = {fmt: store / targets[fmt] / resolved.version for fmt in formats}
    done = {fmt: existing(paths[fmt], resolved) for fmt in formats}
    results = [
        Imported(targets[f], resolved.version, f, paths[f], False) for f in formats if done[f]
    ]
    todo = [fmt for fmt in formats if not done[fmt]]
    if not todo:
        return results

    model, info = _load(resolved)
    spec = _signature(info)
    metrics, params = _run_metrics(mlflow_client, resolved.run_id)
    profile = _drift_profile(mlflow_client, resolved.run_id)
    store.mkdir(parents=True, exist_ok=True)
    # Export every format before writing any: a failure leaves the store as it was.
    with tempfile.TemporaryDirectory(dir=store, prefix=".import-") as tmp:
        staged = {
            fmt: _export(
                model,
                spec,
                get_format(fmt),
                Path(tmp) / fmt,
                targets[fmt],
                resolved,
                uri_used,
                metrics,
                params,
                profile,
            )
            for fmt in todo
        }
        for fmt in todo:
            with atomic_folder(paths[fmt]) as target:
                for item in (Path(tmp) / fmt).iterdir():
                    item.rename(target / item.name)
                staged[fmt].write(target)
            results.append(Imported(targets[fmt], resolved.version, fmt, paths[fmt], True))
    return results


def existing(path: Path, resolved: Resolved) -> bool:
    """True if path already holds this registry version; raise if it holds something else."""
    if not path.exists():
        return False
    try:
        meta = ModelMetadata.read(path)
    except MetadataError as exc:
        raise RegistryError(f"{path} exists but is unreadable ({exc}); remove it first") from exc
    prov = meta.provenance
    same = (
        prov.get("mlflow_model") == resolved.name
        and str(prov.get("mlflow_model_version")) == resolved.version
        and prov.get("mlflow_run_id") == resolved.run_id
    )
    if not same:
        raise RegistryError(
            f"{path} already holds a different model "
            f"({prov.get('mlflow_model') or 'not from MLflow'} "
            f"version {prov.get('mlflow_model_version', meta.version)}); "
            "give another --name or remove it"
        )
    problems = verify(path, meta)
    if problems:
        raise RegistryError(f"{path} is damaged ({'; '.join(problems)}); remove it and re-import")
    return True


def _signature(model_info: Any) -> dict[str, Any]:
    """Input name, shape and labels from our MLmodel metadata, else the signature."""
    ours = (model_info.metadata or {}).get(METADATA_KEY)
    if ours:
        return dict(ours)
    signature = model_info.signature
    inputs = getattr(signature, "inputs", None)
    specs = inputs.inputs if inputs is not None else []
    if len(specs) != 1 or getattr(specs[0], "shape", None) is None:
        raise RegistryError(
            "the model cannot be exported: it has no modelplane metadata and no single-tensor "
            "input signature to take the input shape from"
        )
    return {
        "input_name": specs[0].name or "input__0",
        "input_shape": [int(d) for d in specs[0].shape],
        "output_name": "probabilities",
        "labels": [],
    }


def _run_metrics(mlflow_client: Any, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
    if not run_id:
        return {}, {}
    run = mlflow_client.get_run(run_id)
    return {k: float(v) for k, v in run.data.metrics.items()}, dict(run.data.params)


def _drift_profile(mlflow_client: Any, run_id: str) -> DriftProfile | None:
    """The drift profile the training run logged, or None when it logged none."""
    if not run_id or DRIFT_ARTIFACT not in {f.path for f in mlflow_client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory(prefix="mp-drift-") as tmp:
        local = Path(mlflow_client.download_artifacts(run_id, DRIFT_ARTIFACT, tmp))
        try:
            return DriftProfile.from_dict(json.loads(local.read_text()))
        except (ProfileError, ValueError) as exc:
            raise RegistryError(
                f"run {run_id}: {DRIFT_ARTIFACT} is not a drift profile: {exc}"
            ) from exc


def _load(resolved: Resolved) -> tuple[Any, Any]:
    import mlflow
    from mlflow.exceptions import MlflowException

    model_uri = f"models:/{resolved.name}/{resolved.version}"
    try:
        info = mlflow.models.get_model_info(model_uri)
        if "pytorch" not in (info.flavors or {}):
            raise RegistryError(
                f"{model_uri} cannot be exported: it has no pytorch flavor "
                f"(flavors: {sorted(info.flavors or {})}); log it with mlflow.pytorch.log_model"
            )
        model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    except MlflowException as exc:
        raise RegistryError(f"{model_uri} cannot be loaded: {exc.message}") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        if isinstance(exc, RegistryError):
            raise
        raise RegistryError(f"{model_uri} cannot be loaded: {exc}") from exc
    return model, info


def _export(
    model: Any,
    spec: dict[str, Any],
    model_format: ModelFormat,
    staging: Path,
    store_name: str,
    resolved: Resolved,
    tracking_uri: str,
    metrics: dict[str, float],
    params: dict[str, str],
    profile: DriftProfile | None,
) -> ModelMetadata:
    """Export one format into `staging` (checked against the model); its metadata, unwritten."""
    import torch

    input_name = str(spec["input_name"])
    input_shape = tuple(int(d) for d in spec["input_shape"])
    if not input_shape or input_shape[0] != -1 or any(d < 1 for d in input_shape[1:]):
        raise RegistryError(
            f"the model cannot be exported: input shape {list(input_shape)} needs a batch axis "
            "(-1) first and fixed sizes after it"
        )
    # A fixed, seeded batch: the export is compared with the registered model
    # on the same numbers every time.
    check = np.random.default_rng(0).normal(size=(8, *input_shape[1:])).astype(np.float32)
    with torch.inference_mode():
        try:
            expected = model(torch.from_numpy(check)).detach().cpu().numpy()
        except Exception as exc:
            raise RegistryError(
                f"the model cannot be exported: it fails on a {list(check.shape)} FP32 batch: {exc}"
            ) from exc
    if expected.ndim != 2:
        raise RegistryError(
            f"the model cannot be exported: its output has shape {list(expected.shape)}, "
            "expected [batch, classes]"
        )
    inputs = [TensorSpec(input_name, "FP32", input_shape)]
    if profile is not None:
        try:
            profile.check(inputs)
        except ProfileError as exc:
            raise RegistryError(
                f"the run's {DRIFT_ARTIFACT} does not fit the model: {exc}"
            ) from exc
    outputs = [
        TensorSpec(str(spec.get("output_name", "probabilities")), "FP32", (-1, expected.shape[1]))
    ]
    staging.mkdir(parents=True)
    try:
        model_file = export_checked(model, model_format, inputs[0], outputs[0], staging, check)
    except ExportError as exc:
        raise RegistryError(str(exc)) from exc
    framework = {"torch": torch.__version__, "python": platform.python_version()}
    if model_format.name == "onnx":
        import onnxruntime

        framework["onnxruntime"] = onnxruntime.__version__
    seed = params["seed"] if params.get("seed", "").isdigit() else spec.get("seed")
    return ModelMetadata(
        name=store_name,
        version=resolved.version,
        format=model_format.name,
        inputs=inputs,
        outputs=outputs,
        files={model_file.name: sha256_of(model_file)},
        labels=[str(x) for x in spec.get("labels", [])],
        max_batch_size=256,
        batching=BatchingConfig(enabled=True, max_rows=32, max_queue_delay_ms=0.0),
        metrics=metrics,
        framework_versions=framework,
        seed=int(seed) if seed is not None else None,
        provenance={
            "imported_by": "modelplane store import",
            "mlflow_tracking_uri": tracking.redacted(tracking_uri),
            "mlflow_model": resolved.name,
            "mlflow_model_version": resolved.version,
            "mlflow_model_uri": f"models:/{resolved.name}/{resolved.version}",
            "mlflow_alias": resolved.alias,
            # Aliases move; these are the ones this version had when imported.
            "mlflow_aliases": resolved.aliases,
            "mlflow_run_id": resolved.run_id,
            "mlflow_source": resolved.source,
            "mlflow_params": params,
        },
        drift_profile=profile,
    )
