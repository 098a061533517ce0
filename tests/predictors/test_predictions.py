"""Served predictions are right: held-out accuracy as recorded, ONNX equal to Torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from predictors.training import datasets
from tests.support import MODEL_STORE, Server


def heldout(family: str) -> tuple[np.ndarray, np.ndarray, dict]:
    meta = json.loads((MODEL_STORE / f"{family}-onnx" / "1" / "metadata.json").read_text())
    split = getattr(datasets, family)(meta["seed"])
    return split.x_test, split.y_test, meta


def infer(server: Server, protocol: str, model: str, name: str, x: np.ndarray) -> np.ndarray:
    client_mod = httpclient if protocol == "http" else grpcclient
    url = server.http_url if protocol == "http" else server.grpc_url
    client = client_mod.InferenceServerClient(url)
    outputs = []
    for start in range(0, len(x), 128):
        chunk = np.ascontiguousarray(x[start : start + 128])
        inp = client_mod.InferInput(name, list(chunk.shape), "FP32")
        inp.set_data_from_numpy(chunk)
        outputs.append(client.infer(model, [inp]).as_numpy("probabilities"))
    return np.concatenate(outputs)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", ["digits-onnx", "digits-torch"])
def test_digits_heldout_accuracy_matches_metadata(
    bundled_server: Server, protocol: str, model: str
) -> None:
    x, y, meta = heldout("digits")
    probs = infer(bundled_server, protocol, model, "image", x)
    assert probs.shape == (len(y), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probs.argmax(axis=1) == y).mean())
    assert accuracy == pytest.approx(meta["metrics"]["heldout_accuracy"], abs=1e-6)
    assert accuracy > 0.95


@pytest.mark.parametrize("family,input_name", [("digits", "image"), ("wine", "features")])
def test_onnx_and_torch_agree(bundled_server: Server, family: str, input_name: str) -> None:
    x, _, _ = heldout(family)
    onnx_out = infer(bundled_server, "grpc", f"{family}-onnx", input_name, x)
    torch_out = infer(bundled_server, "http", f"{family}-torch", input_name, x)
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)


def test_wine_heldout_accuracy(bundled_server: Server) -> None:
    x, y, meta = heldout("wine")
    probs = infer(bundled_server, "http", "wine-onnx", "features", x)
    assert float((probs.argmax(axis=1) == y).mean()) == pytest.approx(
        meta["metrics"]["heldout_accuracy"], abs=1e-6
    )
