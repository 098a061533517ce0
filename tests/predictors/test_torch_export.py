"""torch.export programs (.pt2): imported with their own tensor specs, served like TorchScript."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import torch
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from predictors.training.networks import WineMLP
from tests.support import MODEL_STORE, MODELPLANE, start_server


def export_bundled_wine(path: Path) -> Path:
    """The bundled wine network, re-exported with torch.export and a dynamic batch axis."""
    scripted = torch.jit.load(str(MODEL_STORE / "wine-torch" / "1" / "model.pt"))
    state = scripted.state_dict()
    model = WineMLP(state["mean"], state["std"])
    model.load_state_dict(state)
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.zeros(2, 13),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def test_torch_export_model_is_added_and_served(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "wine-torch").symlink_to(MODEL_STORE / "wine-torch")
    source = export_bundled_wine(tmp_path / "wine.pt2")
    added = subprocess.run(
        [MODELPLANE, "store", "add", "--store", str(store), "--name", "wine-export",
         "--input-name", "features", "--output-name", "probabilities", str(source)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    meta = json.loads((store / "wine-export" / "1" / "metadata.json").read_text())
    assert meta["format"] == "torch_export"
    assert meta["platform"] == "pytorch_torch_export"
    # No shapes were given: they come from the program, the batch axis as -1.
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 13]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]

    server = start_server(store, tmp_path)
    try:
        x = np.random.default_rng(5).normal(10, 5, (7, 13)).astype(np.float32)
        http = httpclient.InferenceServerClient(server.http_url)
        grpc = grpcclient.InferenceServerClient(server.grpc_url)
        results = {}
        for model in ("wine-export", "wine-torch"):
            inp = grpcclient.InferInput("features", [7, 13], "FP32")
            inp.set_data_from_numpy(x)
            results[model] = grpc.infer(model, [inp]).as_numpy("probabilities")
        np.testing.assert_allclose(results["wine-export"], results["wine-torch"], atol=1e-5)
        hinp = httpclient.InferInput("features", [7, 13], "FP32")
        hinp.set_data_from_numpy(x)
        got = http.infer("wine-export", [hinp]).as_numpy("probabilities")
        np.testing.assert_allclose(got, results["wine-torch"], atol=1e-5)
    finally:
        server.stop()


def test_a_torchscript_file_is_not_taken_for_a_program(tmp_path: Path) -> None:
    result = subprocess.run(
        [MODELPLANE, "store", "add", "--store", str(tmp_path), "--name", "w",
         "--format", "torch_export", str(MODEL_STORE / "wine-torch" / "1" / "model.pt")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a torch.export program" in result.stderr
    assert not any(tmp_path.iterdir())
