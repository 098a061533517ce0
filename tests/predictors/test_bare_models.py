"""A KServe storageUri with just a model file, no metadata.json, is served.

KServe's storage initializer copies the storageUri to /mnt/models, and
people point it at a bare `model.onnx` (or `/1/model.onnx`, Triton's
layout), a TorchScript `.pt` or a torch.export `.pt2`. modelplane derives
the metadata at load (the ONNX graph, the program's signature; TorchScript
needs its inputs from flags), says so in the log, and serves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from predictors.training import datasets
from tests.predictors.test_torch_export import export_bundled_wine
from tests.support import MODEL_STORE, start_server

SEED = 20261123
X = datasets.wine(SEED).x_test[:4]


def served_probabilities(url: str, model: str) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    inp = grpcclient.InferInput("features", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    return client.infer(model, [inp]).as_numpy("probabilities")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    server = start_server(MODEL_STORE, tmp_path_factory.mktemp("ref"), "--models", "wine-onnx")
    try:
        return served_probabilities(server.grpc_url, "wine-onnx")
    finally:
        server.stop()


@pytest.mark.parametrize("layout", ["model.onnx", "1/model.onnx", "wine.onnx"])
def test_bare_onnx_is_served_in_kserve_layouts(
    tmp_path: Path, layout: str, reference: np.ndarray
) -> None:
    mount = tmp_path / "models"
    (mount / layout).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(MODEL_STORE / "wine-onnx" / "1" / "model.onnx", mount / layout)
    server = start_server(mount, tmp_path, "--model_name", "wine")
    try:
        meta = httpx.get(f"http://{server.http_url}/v2/models/wine").json()
        assert meta["platform"] == "onnxruntime_onnx"
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 13]}]
        assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
        assert meta["versions"] == ["1"]
        assert meta["parameters"]["provenance"]["derived_from"] == Path(layout).name
        np.testing.assert_allclose(
            served_probabilities(server.grpc_url, "wine"), reference, atol=1e-6
        )
    finally:
        server.stop()
    assert f"no metadata.json, metadata derived from {Path(layout).name}" in server.log()


def test_bare_torch_export_program_is_served(tmp_path: Path, reference: np.ndarray) -> None:
    mount = tmp_path / "models"
    mount.mkdir()
    export_bundled_wine(mount / "model.pt2")
    server = start_server(
        mount, tmp_path, "--model_name", "wine",
        "--input_name", "features", "--output_name", "probabilities",
    )  # fmt: skip
    try:
        meta = httpx.get(f"http://{server.http_url}/v2/models/wine").json()
        assert meta["platform"] == "pytorch_torch_export"
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 13]}]
        np.testing.assert_allclose(
            served_probabilities(server.grpc_url, "wine"), reference, atol=1e-5
        )
    finally:
        server.stop()


def test_bare_torchscript_takes_its_inputs_from_flags(
    tmp_path: Path, reference: np.ndarray
) -> None:
    mount = tmp_path / "models"
    mount.mkdir()
    shutil.copyfile(MODEL_STORE / "wine-torch" / "1" / "model.pt", mount / "model.pt")
    server = start_server(
        mount, tmp_path, "--model_name", "wine", "--input_name", "features",
        "--input_shape=-1,13", "--input_dtype", "FP32", "--output_name", "probabilities",
    )  # fmt: skip
    try:
        np.testing.assert_allclose(
            served_probabilities(server.grpc_url, "wine"), reference, atol=1e-5
        )
    finally:
        server.stop()


def test_bare_torchscript_without_inputs_fails_that_model_only(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "scripted" / "1").mkdir(parents=True)
    shutil.copyfile(
        MODEL_STORE / "wine-torch" / "1" / "model.pt", store / "scripted" / "1" / "model.pt"
    )
    (store / "wine-onnx").symlink_to(MODEL_STORE / "wine-onnx")
    server = start_server(store, tmp_path)
    try:
        ready = httpx.get(f"http://{server.http_url}/v2/models/scripted/ready")
        assert ready.status_code == 503
        assert "TorchScript files do not record their inputs" in ready.json()["error"]
        assert httpx.get(f"http://{server.http_url}/v2/models/wine-onnx/ready").status_code == 200
    finally:
        server.stop()


def test_two_model_files_and_no_metadata_is_a_clear_error(tmp_path: Path) -> None:
    mount = tmp_path / "models"
    mount.mkdir()
    for name in ("a.onnx", "b.onnx"):
        shutil.copyfile(MODEL_STORE / "wine-onnx" / "1" / "model.onnx", mount / name)
    server = start_server(mount, tmp_path, wait_ready=False)
    try:
        server.wait("live")
        deadline_ready = httpx.get(f"http://{server.http_url}/v2/models/models/ready")
        assert deadline_ready.status_code == 503
        assert (
            "holds several model files (a.onnx, b.onnx) and no metadata.json"
            in (deadline_ready.json()["error"])
        )
    finally:
        server.stop()
