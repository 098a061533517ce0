"""MLflow registry -> model store -> `modelplane serve`, and the canary values.

A real MLflow (sqlite tracking store in a tmp dir) gets two trained versions of
the wine model (champion and challenger); the champion is imported into a
temporary store, served by a real `modelplane serve`, and its predictions over
V2 HTTP and gRPC are compared with the registered model's own outputs.

The commands run as subprocesses (the `modelplane` CLI): kserve, which the
server imports, and tritonclient define clashing protobufs in one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml

from predictors.training import build, datasets
from tests.support import MODELPLANE, REPO, start_server

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

MODEL = "mlflow-wine"


@dataclass(frozen=True)
class Registry:
    root: Path
    env: dict[str, str]
    uri: str


def modelplane(registry: Registry, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MODELPLANE, *args],
        env=registry.env,
        cwd=registry.root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def snapshot(store: Path) -> dict[str, str]:
    """Every path under the store (hidden ones too) with its content hash."""
    if not store.exists():
        return {}
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(store.rglob("*"))
    }


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A sqlite MLflow with wine v1 @champion and v2 @challenger (different training)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    reg = Registry(root, env, uri)
    for extra in (["--alias", "champion"], ["--alias", "challenger", "--epochs", "60"]):
        done = modelplane(reg, "train", "--family", "wine", *extra)
        assert done.returncode == 0, done.stderr
    # The in-process client reads the same store, for reference outputs.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield reg


@pytest.fixture(scope="module")
def store(registry: Registry) -> Path:
    """The champion imported into a fresh store (both formats)."""
    store = registry.root / "store"
    done = modelplane(
        registry, "store", "import", f"models:/{MODEL}@champion", "--store", str(store)
    )
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout
    return store


def heldout() -> tuple[np.ndarray, np.ndarray]:
    split = datasets.wine(build.SEED)
    return split.x_test, split.y_test


def test_training_logged_params_metrics_and_aliases(registry: Registry) -> None:
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert (str(champion.version), str(challenger.version)) == ("1", "2")
    run = client.get_run(champion.run_id)
    assert run.data.params["epochs"] == "200"
    assert run.data.params["family"] == "wine"
    assert run.data.metrics["heldout_accuracy"] > 0.9
    assert client.get_run(challenger.run_id).data.params["epochs"] == "60"
    # Artifacts live beside the sqlite file, not in the working directory.
    assert (registry.root / "artifacts").is_dir()
    assert not (registry.root / "mlruns").exists()


def test_import_metadata_carries_provenance_and_checksums(registry: Registry, store: Path) -> None:
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(champion.run_id)
    for name, fmt, file_name in (
        (f"{MODEL}-onnx", "onnx", "model.onnx"),
        (f"{MODEL}-torch", "torchscript", "model.pt"),
    ):
        version_dir = store / name / str(champion.version)
        meta = json.loads((version_dir / "metadata.json").read_text())
        assert (meta["name"], meta["version"], meta["format"]) == (name, "1", fmt)
        assert (
            meta["files"][file_name]
            == hashlib.sha256((version_dir / file_name).read_bytes()).hexdigest()
        )
        prov = meta["provenance"]
        assert prov["mlflow_run_id"] == champion.run_id
        assert prov["mlflow_model"] == MODEL
        assert prov["mlflow_model_version"] == "1"
        assert prov["mlflow_alias"] == "champion"
        assert "champion" in prov["mlflow_aliases"]
        assert meta["metrics"]["heldout_accuracy"] == pytest.approx(
            run.data.metrics["heldout_accuracy"]
        )
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 13]}]
        assert meta["labels"] == ["class_0", "class_1", "class_2"]
    verify = modelplane(registry, "store", "verify", "--store", str(store))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_served_predictions_match_the_registered_model(
    registry: Registry, store: Path, tmp_path: Path
) -> None:
    import torch

    x, y = heldout()
    model = mlflow.pytorch.load_model(f"models:/{MODEL}/1", map_location="cpu")
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    server = start_server(store, tmp_path)
    try:
        for name in (f"{MODEL}-onnx", f"{MODEL}-torch"):
            for module, url in ((httpclient, server.http_url), (grpcclient, server.grpc_url)):
                client = module.InferenceServerClient(url)
                inp = module.InferInput("features", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                probs = client.infer(name, [inp]).as_numpy("probabilities")
                np.testing.assert_allclose(probs, expected, atol=1e-5)
                accuracy = float((probs.argmax(axis=1) == y).mean())
                meta = json.loads((store / name / "1" / "metadata.json").read_text())
                assert accuracy == pytest.approx(meta["metrics"]["heldout_accuracy"], abs=1e-6)
    finally:
        assert server.stop() == 0, server.log()


def test_second_import_is_idempotent(registry: Registry, store: Path) -> None:
    before = snapshot(store)
    # The same version, by alias and by number: nothing changes, no error.
    for uri in (f"models:/{MODEL}@champion", f"models:/{MODEL}/1"):
        done = modelplane(registry, "store", "import", uri, "--store", str(store))
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("unchanged") == 2, done.stdout
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "uri,message",
    [
        ("wine", "not a registered model URI"),
        (f"models:/{MODEL}", "not a registered model URI"),
        (f"models:/{MODEL}@nosuchalias", "not found in the MLflow registry"),
        (f"models:/{MODEL}/99", "not found in the MLflow registry"),
        ("models:/no-such-model/1", "not found in the MLflow registry"),
    ],
)
def test_bad_uri_fails_clearly_and_leaves_the_store(
    registry: Registry, store: Path, uri: str, message: str
) -> None:
    before = snapshot(store)
    done = modelplane(registry, "store", "import", uri, "--store", str(store))
    assert done.returncode == 2
    assert message in done.stderr
    assert "the store was not changed" in done.stderr
    assert snapshot(store) == before


def test_unexportable_model_fails_clearly_and_leaves_the_store(
    registry: Registry, store: Path
) -> None:
    # A registered version whose source is no MLflow model at all.
    junk = registry.root / "junk-model"
    junk.mkdir()
    (junk / "weights.bin").write_bytes(b"not a model")
    client = mlflow.MlflowClient()
    client.create_registered_model("junk")
    version = client.create_model_version("junk", junk.as_uri())
    before = snapshot(store)
    done = modelplane(registry, "store", "import", f"models:/junk/{version.version}")
    assert done.returncode == 2
    assert "cannot be" in done.stderr and "the store was not changed" in done.stderr
    # The default store (relative to the working directory) was never created.
    assert not (registry.root / "model-store").exists()
    done = modelplane(
        registry, "store", "import", f"models:/junk/{version.version}", "--store", str(store)
    )
    assert done.returncode == 2
    assert snapshot(store) == before


def canary(registry: Registry, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    out = registry.root / f"values-{abs(hash(args))}.yaml"
    done = modelplane(registry, "canary-values", "--model", MODEL, "--out", str(out), *args)
    return done, (yaml.safe_load(out.read_text()) if done.returncode == 0 else {})


def test_canary_values_from_aliases(registry: Registry, store: Path) -> None:
    # The challenger was not imported yet: with --store that is refused.
    done, _ = canary(registry, "--store", str(store))
    assert done.returncode == 2 and "modelplane store import" in done.stderr
    imported = modelplane(
        registry, "store", "import", f"models:/{MODEL}@challenger", "--store", str(store)
    )
    assert imported.returncode == 0, imported.stderr

    done, values = canary(registry, "--store", str(store), "--percent", "20")
    assert done.returncode == 0, done.stderr
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert values["deploymentMode"] == "Knative"
    (entry,) = values["models"]
    assert entry["name"] == f"{MODEL}-onnx"
    assert entry["format"] == "onnx"
    assert entry["version"] == "2"
    assert entry["storageUri"] == f"pvc://modelplane-model-store/{MODEL}-onnx/2"
    assert entry["canaryTrafficPercent"] == 20
    assert entry["annotations"]["modelplane.io/champion-version"] == str(champion.version)
    assert entry["annotations"]["modelplane.io/challenger-run-id"] == challenger.run_id

    done, values = canary(registry, "--stage", "champion", "--format", "torchscript")
    assert done.returncode == 0, done.stderr
    (entry,) = values["models"]
    assert (entry["name"], entry["version"]) == (f"{MODEL}-torch", "1")
    assert "canaryTrafficPercent" not in entry

    done, values = canary(registry, "--stage", "promote")
    assert done.returncode == 0, done.stderr
    assert values["models"][0]["version"] == "2"
    assert "canaryTrafficPercent" not in values["models"][0]

    done, _ = canary(registry, "--challenger-alias", "champion")
    assert done.returncode == 2 and "nothing to canary" in done.stderr


def test_canary_values_are_accepted_by_the_chart(registry: Registry) -> None:
    chart = REPO / "charts" / "modelplane"
    if not (chart / "values.schema.json").is_file():
        pytest.skip("charts/modelplane is not there")
    done, values = canary(registry)
    assert done.returncode == 0, done.stderr
    import jsonschema

    # Helm checks the schema against the defaults merged with the file; the
    # file only sets top-level keys (a list and a scalar), which replace.
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    jsonschema.validate({**defaults, **values}, schema)
    pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
    from tests.charts.chart_support import parse, render

    objects = parse(render(values))
    (isvc,) = [o for o in objects if o["kind"] == "InferenceService"]
    predictor = isvc["spec"]["predictor"]
    assert isvc["metadata"]["name"] == f"{MODEL}-onnx"
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["storageUri"] == f"pvc://modelplane-model-store/{MODEL}-onnx/2"
    assert isvc["metadata"]["annotations"]["modelplane.io/challenger-version"] == "2"
