"""From training to serving through MLflow: train and register, import, canary.

- `train_and_register` trains a bundled recipe (predictors/training/build.py),
  logs parameters, metrics and the model to MLflow and registers it as a new
  version of a registered model, optionally under an alias (champion,
  challenger).
- `import_model` exports a registered version (`models:/NAME@ALIAS` or
  `models:/NAME/VERSION`) into the model store: `<name>-onnx/<version>` and
  `<name>-torch/<version>`, where <version> is the registry's version, with the
  run id, version, aliases and run metrics in metadata.json. Importing a
  version that is already there changes nothing.
- `canary_values` turns the champion/challenger aliases into Helm values for
  charts/modelplane (a `models:` entry with `canaryTrafficPercent`).

The tracking store is MLFLOW_TRACKING_URI, else a sqlite file under the
repository's ignored `.work/mlflow/`. mlflow is imported inside functions: it
is an optional extra (`pip install -e .[mlflow]`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from predictors.metadata import FORMATS, BatchingConfig, MetadataError, ModelMetadata, TensorSpec
from predictors.model_store import NAME_RE, sha256_of, verify

# MLflow 3 reports usage to a remote endpoint unless told not to; modelplane
# talks to loopback and the configured tracking server only.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

EXPERIMENT = "modelplane"
# Store suffix per format: one format per store entry, as for the bundled models.
SUFFIXES = {"onnx": "onnx", "torchscript": "torch"}
URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
# Registered model names default to `mlflow-<family>` so that imports never
# collide with the bundled `<family>-onnx/1` entries built by `store build`.
REGISTERED_PREFIX = "mlflow-"
METADATA_KEY = "modelplane"  # our key in the MLmodel file's `metadata`


class RegistryError(ValueError):
    """A registry operation was refused or failed; the message says why."""


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else sqlite in `<repo>/.work/mlflow/` (or ./.work/mlflow/)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    repo = Path(__file__).resolve().parent.parent
    root = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
    folder = root / ".work" / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def _artifact_location(tracking_uri: str) -> str | None:
    # A sqlite store keeps artifacts beside the database file; MLflow's own
    # default (./mlruns in the working directory) would litter wherever the
    # command happens to run. A tracking server decides for itself.
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def _redacted(uri: str) -> str:
    """The tracking URI without credentials, fit for metadata.json."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def _client(tracking_uri: str | None) -> Any:
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


# -- training --------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    registered_name: str
    version: str
    run_id: str
    alias: str | None
    metrics: dict[str, float]
    tracking_uri: str


def train_and_register(
    family: str = "wine",
    alias: str | None = None,
    registered_name: str | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    tracking_uri: str | None = None,
    experiment: str = EXPERIMENT,
) -> Trained:
    """Train a bundled recipe, log it to MLflow and register a new model version."""
    import mlflow
    import torch
    from rich.progress import Progress

    from predictors.training import build, datasets

    recipes = {r.family: r for r in build.RECIPES}
    if family not in recipes:
        raise RegistryError(f"unknown family {family!r}; choose from {sorted(recipes)}")
    recipe = recipes[family]
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    if learning_rate is not None:
        recipe = dataclasses.replace(recipe, lr=learning_rate)
    name = registered_name or f"{REGISTERED_PREFIX}{family}"
    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)

    exp = client.get_experiment_by_name(experiment)
    experiment_id = (
        exp.experiment_id
        if exp is not None
        else client.create_experiment(experiment, artifact_location=_artifact_location(uri))
    )

    # The same determinism as `store build`: same seed, one thread,
    # deterministic kernels, so a run is reproducible from its parameters.
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        split = recipe.split(build.SEED)
        with Progress(transient=True) as progress:
            model = build.train(recipe, split, progress)
        with torch.inference_mode():
            test_probs = model(torch.from_numpy(split.x_test)).numpy()
            train_probs = model(torch.from_numpy(split.x_train)).numpy()
        metrics = {
            "heldout_accuracy": round(build.accuracy(test_probs, split.y_test), 6),
            "heldout_samples": float(len(split.y_test)),
            "train_accuracy": round(build.accuracy(train_probs, split.y_train), 6),
        }
        params = {
            "family": family,
            "epochs": recipe.epochs,
            "learning_rate": recipe.lr,
            "seed": build.SEED,
            "dataset": f"sklearn.datasets.load_{family}",
            "test_fraction": datasets.TEST_FRACTION,
            "input_name": recipe.input_name,
            "torch": torch.__version__,
        }
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                # MLflow's default "pt2" format (torch.export) needs an example
                # batch; its batch axis becomes dynamic in the signature.
                input_example=split.x_test[:4],
                # Naming the requirement skips MLflow's slow import-tracing
                # inference of requirements.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
                metadata={
                    METADATA_KEY: {
                        "family": family,
                        "input_name": recipe.input_name,
                        "input_shape": [-1, *recipe.input_shape],
                        "output_name": "probabilities",
                        "labels": list(split.labels),
                        "seed": build.SEED,
                    }
                },
            )
        version = mlflow.register_model(info.model_uri, name)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return Trained(name, str(version.version), run.info.run_id, alias, metrics, uri)


# -- import into the model store -------------------------------------------


@dataclass(frozen=True)
class Imported:
    name: str  # store name, e.g. mlflow-wine-onnx
    version: str
    format: str
    path: Path
    changed: bool  # False: this version was already in the store


@dataclass(frozen=True)
class _Resolved:
    name: str
    version: str
    run_id: str
    alias: str | None
    aliases: list[str]
    source: str


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` -> (name, alias, version)."""
    match = URI_RE.match(uri.strip())
    if not match:
        raise RegistryError(
            f"{uri!r} is not a registered model URI; use models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return match["name"], match["alias"], match["version"]


def _resolve(client: Any, uri: str) -> _Resolved:
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(uri)
    try:
        if alias is not None:
            mv = client.get_model_version_by_alias(name, alias)
        else:
            mv = client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{uri}: not found in the MLflow registry: {exc.message}") from exc
    return _Resolved(
        name, str(mv.version), mv.run_id or "", alias, sorted(mv.aliases or []), mv.source or ""
    )


def _existing(path: Path, resolved: _Resolved) -> bool:
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
        return ours
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


def _run_metrics(client: Any, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
    if not run_id:
        return {}, {}
    run = client.get_run(run_id)
    return {k: float(v) for k, v in run.data.metrics.items()}, dict(run.data.params)


def import_model(
    uri: str,
    store: Path,
    formats: list[str] | None = None,
    name: str | None = None,
    tracking_uri: str | None = None,
) -> list[Imported]:
    """Export a registered model version into `store`, one entry per format.

    Everything is exported to a temporary folder inside the store, checked
    against the registered model's own outputs, and only then renamed into
    place: a failure leaves the store as it was.
    """
    formats = formats or ["onnx", "torchscript"]
    unknown = sorted(set(formats) - set(SUFFIXES))
    if unknown:
        raise RegistryError(f"unknown format {unknown}; choose from {sorted(SUFFIXES)}")
    uri_string = tracking_uri or default_tracking_uri()
    client = _client(uri_string)
    resolved = _resolve(client, uri)
    base = name or resolved.name
    targets = {fmt: f"{base}-{SUFFIXES[fmt]}" for fmt in formats}
    for store_name in targets.values():
        if not NAME_RE.match(store_name):
            raise RegistryError(
                f"store name {store_name!r} is not a Kubernetes name (lowercase letters, digits, "
                "'-'); give --name"
            )
    paths = {fmt: store / targets[fmt] / resolved.version for fmt in formats}
    done = {fmt: _existing(paths[fmt], resolved) for fmt in formats}
    todo = [fmt for fmt in formats if not done[fmt]]
    results = [
        Imported(targets[f], resolved.version, f, paths[f], False) for f in formats if done[f]
    ]
    if not todo:
        return results

    model, info = _load(client, resolved)
    spec = _signature(info)
    metrics, params = _run_metrics(client, resolved.run_id)
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store, prefix=".import-") as tmp:
        staged = {
            fmt: _export(model, spec, fmt, Path(tmp) / fmt, targets[fmt], resolved, metrics, params)
            for fmt in todo
        }
        for fmt in todo:
            paths[fmt].parent.mkdir(parents=True, exist_ok=True)
            staged[fmt].rename(paths[fmt])
            results.append(Imported(targets[fmt], resolved.version, fmt, paths[fmt], True))
    return results


def _load(client: Any, resolved: _Resolved) -> tuple[Any, Any]:
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
    fmt: str,
    staging: Path,
    store_name: str,
    resolved: _Resolved,
    metrics: dict[str, float],
    params: dict[str, str],
) -> Path:
    """Export one format into staging/<version>/ and check it computes what model does."""
    import platform

    import torch

    from predictors.training.build import export_onnx, export_torchscript

    input_name = str(spec["input_name"])
    input_shape = tuple(int(d) for d in spec["input_shape"])
    if not input_shape or input_shape[0] != -1 or any(d < 1 for d in input_shape[1:]):
        raise RegistryError(
            f"the model cannot be exported: input shape {list(input_shape)} needs a batch axis "
            "(-1) first and fixed sizes after it"
        )
    # A fixed, seeded batch: the check below compares the export with the
    # registered model on the same numbers every time.
    check = np.random.default_rng(0).normal(size=(8, *input_shape[1:])).astype(np.float32)
    example = torch.from_numpy(check[:2])
    with torch.inference_mode():
        try:
            expected = np.asarray(model(torch.from_numpy(check)).detach().cpu().numpy())
        except Exception as exc:
            raise RegistryError(
                f"the model cannot be exported: it fails on a {list(check.shape)} FP32 batch: {exc}"
            ) from exc
    if expected.ndim != 2:
        raise RegistryError(
            f"the model cannot be exported: its output has shape {list(expected.shape)}, "
            "expected [batch, classes]"
        )
    version_dir = staging / resolved.version
    version_dir.mkdir(parents=True)
    file_name = FORMATS[fmt][0]
    try:
        if fmt == "onnx":
            import onnxruntime as ort

            export_onnx(model, example, input_name, version_dir / file_name)
            session = ort.InferenceSession(str(version_dir / file_name))
            exported = session.run(None, {input_name: check})[0]
        else:
            export_torchscript(model, example, version_dir / file_name)
            loaded = torch.jit.load(str(version_dir / file_name))
            with torch.inference_mode():
                exported = loaded(torch.from_numpy(check)).numpy()
    except RegistryError:
        raise
    except Exception as exc:  # exporters raise many types; all mean the same here
        raise RegistryError(f"the model cannot be exported to {fmt}: {exc}") from exc
    if not np.allclose(exported, expected, atol=1e-5):
        raise RegistryError(
            f"the {fmt} export does not compute what the registered model computes "
            f"(max difference {float(np.abs(exported - expected).max()):.3g})"
        )
    framework = {"torch": torch.__version__, "python": platform.python_version()}
    if fmt == "onnx":
        framework["onnxruntime"] = __import__("onnxruntime").__version__
    meta = ModelMetadata(
        name=store_name,
        version=resolved.version,
        format=fmt,
        inputs=[TensorSpec(input_name, "FP32", input_shape)],
        outputs=[
            TensorSpec(
                str(spec.get("output_name", "probabilities")), "FP32", (-1, expected.shape[1])
            )
        ],
        files={file_name: sha256_of(version_dir / file_name)},
        labels=[str(x) for x in spec.get("labels", [])],
        max_batch_size=256,
        batching=BatchingConfig(enabled=True, max_batch_size=32, max_queue_delay_ms=0.0),
        metrics=metrics,
        framework_versions=framework,
        seed=int(params["seed"]) if params.get("seed", "").isdigit() else spec.get("seed"),
        provenance={
            "imported_by": "modelplane store import",
            "mlflow_tracking_uri": _redacted(_tracking_uri()),
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
    )
    meta.write(version_dir)
    return version_dir


def _tracking_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


# -- champion / challenger -> Helm values ------------------------------------


STAGES = ("canary", "champion", "promote")


def canary_values(
    model: str,
    fmt: str = "onnx",
    percent: int = 10,
    stage: str = "canary",
    storage_uri_prefix: str = "pvc://modelplane-model-store",
    champion_alias: str = "champion",
    challenger_alias: str = "challenger",
    store_name: str | None = None,
    store: Path | None = None,
    tracking_uri: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Helm values for charts/modelplane from the registry's aliases, and a header comment.

    KServe's canary (Knative mode) sends canaryTrafficPercent to the newest
    revision and the rest to the last one that was rolled out in full, so:
    stage `champion` rolls the champion out in full (install, or roll back),
    `canary` then points the model at the challenger with `percent`, and
    `promote` sends the challenger all traffic.
    """
    if fmt not in SUFFIXES:
        raise RegistryError(f"unknown format {fmt!r}; choose from {sorted(SUFFIXES)}")
    if stage not in STAGES:
        raise RegistryError(f"unknown stage {stage!r}; choose from {list(STAGES)}")
    if not 0 <= percent <= 100:
        raise RegistryError("--percent must be between 0 and 100")
    client = _client(tracking_uri)
    champion = _resolve(client, f"models:/{model}@{champion_alias}")
    challenger = (
        _resolve(client, f"models:/{model}@{challenger_alias}") if stage != "champion" else None
    )
    if challenger is not None and challenger.version == champion.version:
        raise RegistryError(
            f"{model}: {challenger_alias} and {champion_alias} are both version "
            f"{champion.version}; there is nothing to canary"
        )
    name = f"{store_name or model}-{SUFFIXES[fmt]}"
    if not NAME_RE.match(name) or len(name) > 45:
        raise RegistryError(
            f"{name!r} cannot be an InferenceService name (a DNS label of at most 45 characters)"
        )
    serving = challenger or champion
    if store is not None:
        # The cluster reads the store this one is copied to: refuse values that
        # point at a version nobody imported.
        for resolved in filter(None, (champion, challenger)):
            path = store / name / resolved.version
            if not _existing(path, resolved):
                raise RegistryError(
                    f"{path} is missing; run `modelplane store import "
                    f"models:/{model}/{resolved.version} --store {store}` first"
                )
    entry: dict[str, Any] = {
        "name": name,
        "format": fmt,
        "version": serving.version,
        "storageUri": f"{storage_uri_prefix.rstrip('/')}/{name}/{serving.version}",
    }
    if stage == "canary":
        entry["canaryTrafficPercent"] = percent
    entry["annotations"] = {
        "modelplane.io/mlflow-model": model,
        "modelplane.io/champion-version": champion.version,
        "modelplane.io/champion-run-id": champion.run_id,
    }
    if challenger is not None:
        entry["annotations"]["modelplane.io/challenger-version"] = challenger.version
        entry["annotations"]["modelplane.io/challenger-run-id"] = challenger.run_id
    header = {
        "canary": f"{percent}% to {challenger_alias} v{serving.version}, the rest to the "
        f"revision rolled out before (install {champion_alias} v{champion.version} first "
        "with --stage champion)",
        "champion": f"{champion_alias} v{champion.version} takes all traffic",
        "promote": f"{challenger_alias} v{serving.version} takes all traffic; move the "
        f"{champion_alias} alias to it in MLflow",
    }[stage]
    return {"deploymentMode": "Knative", "models": [entry]}, (
        f"Generated by `modelplane canary-values` from models:/{model} "
        f"({champion_alias} v{champion.version}"
        + (f", {challenger_alias} v{challenger.version}" if challenger else "")
        + f").\nStage {stage}: {header}.\n"
        "Apply: helm upgrade --install modelplane charts/modelplane -f <this file>"
    )


def dump_values(values: dict[str, Any], header: str) -> str:
    import yaml

    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(values, sort_keys=False)
