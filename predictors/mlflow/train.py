"""`modelplane train`: train a bundled recipe, log it to MLflow, register a new version."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from predictors.mlflow import tracking
from predictors.mlflow.tracking import REGISTERED_PREFIX, RegistryError

EXPERIMENT = "modelplane"
METADATA_KEY = "modelplane"  # our key in the MLmodel file's `metadata`
#: the run's artifact holding the training inputs' drift profile (predictors.drift)
DRIFT_ARTIFACT = "drift_profile.json"


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
    uri = tracking.tracking_uri(tracking_uri)
    mlflow_client = tracking.client(uri)

    exp = mlflow_client.get_experiment_by_name(experiment)
    experiment_id = (
        exp.experiment_id
        if exp is not None
        else mlflow_client.create_experiment(
            experiment, artifact_location=tracking.artifact_location(uri)
        )
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
            # Logged here, where the training rows are known; `store import`
            # reads it back, so the importer needs no knowledge of the data.
            mlflow.log_dict(build.drift_profile(recipe, split).to_dict(), DRIFT_ARTIFACT)
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
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    return Trained(name, str(version.version), run.info.run_id, alias, metrics, uri)
