"""`modelplane store add/list/verify`: bring your own model, and refuse what is not one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support import MODEL_STORE, MODELPLANE


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODELPLANE, *args], capture_output=True, text=True, timeout=120)


def snapshot(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


def test_add_onnx_derives_tensors_and_checksums(tmp_path: Path) -> None:
    source = MODEL_STORE / "digits-onnx" / "1" / "model.onnx"
    result = run("store", "add", "--store", str(tmp_path), "--name", "my-digits", str(source))
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "my-digits" / "1" / "metadata.json").read_text())
    assert meta["format"] == "onnx"
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    bundled = json.loads((MODEL_STORE / "digits-onnx" / "1" / "metadata.json").read_text())
    assert meta["files"]["model.onnx"] == bundled["files"]["model.onnx"]

    # A second add without --version becomes version 2, side by side.
    assert (
        run("store", "add", "--store", str(tmp_path), "--name", "my-digits", str(source)).returncode
        == 0
    )
    assert (tmp_path / "my-digits" / "2" / "metadata.json").is_file()
    listing = run("store", "list", "--store", str(tmp_path)).stdout
    assert "my-digits            1" in listing and "my-digits            2" in listing


def test_add_torchscript_checks_shape_with_a_trial_run(tmp_path: Path) -> None:
    source = MODEL_STORE / "wine-torch" / "1" / "model.pt"
    bad = run(
        "store", "add", "--store", str(tmp_path), "--name", "w", "--input-shape=-1,12", str(source)
    )
    assert bad.returncode == 2
    assert "trial run with inputs [[-1, 12]] failed" in bad.stderr
    assert "store was not changed" in bad.stderr
    assert not any(tmp_path.iterdir())

    ok = run(
        "store",
        "add",
        "--store",
        str(tmp_path),
        "--name",
        "w",
        "--input-name",
        "features",
        "--input-shape=-1,13",
        "--input-dtype",
        "FP32",
        "--output-name",
        "probabilities",
        str(source),
    )
    assert ok.returncode == 0, ok.stderr
    meta = json.loads((tmp_path / "w" / "1" / "metadata.json").read_text())
    assert meta["format"] == "torchscript"
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]


def test_torchscript_needs_input_shape(tmp_path: Path) -> None:
    result = run(
        "store",
        "add",
        "--store",
        str(tmp_path),
        "--name",
        "w",
        str(MODEL_STORE / "wine-torch" / "1" / "model.pt"),
    )
    assert result.returncode == 2
    assert "give --input-shape" in result.stderr


@pytest.mark.parametrize("content", [b"not a model at all", b"PK\x03\x04broken zip"])
def test_invalid_file_is_refused_and_store_untouched(tmp_path: Path, content: bytes) -> None:
    store = tmp_path / "store"
    shutil.copytree(MODEL_STORE / "wine-onnx", store / "wine-onnx")
    before = snapshot(store)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(content)
    result = run(
        "store", "add", "--store", str(store), "--name", "junk", "--input-shape=-1,4", str(junk)
    )
    assert result.returncode == 2
    assert (
        "is not a valid ONNX model" in result.stderr
        or "is not a TorchScript model" in result.stderr
    )
    assert snapshot(store) == before


def test_v2_model_names_are_kept_and_paths_refused(tmp_path: Path) -> None:
    """Triton model repositories name models like `densenet_onnx`; a name is never a path."""
    source = str(MODEL_STORE / "wine-onnx" / "1" / "model.onnx")
    store = tmp_path / "store"
    for name in ("densenet_onnx", "Bert.Base-2"):
        result = run("store", "add", "--store", str(store), "--name", name, source)
        assert result.returncode == 0, result.stderr
        assert json.loads((store / name / "1" / "metadata.json").read_text())["name"] == name
    before = snapshot(store)
    for name in ("../escape", ".hidden", "a/b", "a..b", "x" * 129, "sp ace"):
        result = run("store", "add", "--store", str(store), "--name", name, source)
        assert result.returncode == 2, name
        assert "must be letters, digits, '_', '-' and '.'" in result.stderr
    bad_version = run(
        "store", "add", "--store", str(store), "--name", "w", "--version", "../1", source
    )
    assert bad_version.returncode == 2
    assert "version '../1' must be letters" in bad_version.stderr
    assert snapshot(store) == before
    assert not (tmp_path / "escape").exists()


def test_verify_catches_a_changed_file(tmp_path: Path) -> None:
    shutil.copytree(MODEL_STORE, tmp_path / "store")
    assert run("store", "verify", "--store", str(tmp_path / "store")).returncode == 0
    with (tmp_path / "store" / "wine-torch" / "1" / "model.pt").open("ab") as fh:
        fh.write(b"tampered")
    result = run("store", "verify", "--store", str(tmp_path / "store"))
    assert result.returncode == 1
    assert "wine-torch:1 FAILED: model.pt checksum mismatch" in result.stdout
    assert "wine-onnx:1 ok" in result.stdout


def test_build_retrains_to_the_bundled_model(tmp_path: Path) -> None:
    """`store build` is deterministic: a rebuild computes what the bundled model computes."""
    result = run("store", "build", "--store", str(tmp_path), "--only", "wine")
    assert result.returncode == 0, result.stderr
    new = json.loads((tmp_path / "wine-torch" / "1" / "metadata.json").read_text())
    old = json.loads((MODEL_STORE / "wine-torch" / "1" / "metadata.json").read_text())
    assert new["metrics"] == old["metrics"]
    x = torch.from_numpy(np.random.default_rng(0).normal(10, 5, (32, 13)).astype(np.float32))
    rebuilt = torch.jit.load(str(tmp_path / "wine-torch" / "1" / "model.pt"))
    bundled = torch.jit.load(str(MODEL_STORE / "wine-torch" / "1" / "model.pt"))
    with torch.inference_mode():
        np.testing.assert_allclose(rebuilt(x).numpy(), bundled(x).numpy(), atol=1e-5)


def test_versions_that_would_escape_or_shadow_the_store_are_refused(tmp_path: Path) -> None:
    """Before: `--version ""` wrote metadata.json into the model's own folder, so the store
    read as one model and every other model vanished from list, verify and serve;
    `--version ../../x` and `--version /abs` wrote outside the store and exited 0."""
    source = str(MODEL_STORE / "wine-onnx" / "1" / "model.onnx")
    store = tmp_path / "store"
    assert run("store", "add", "--store", str(store), "--name", "keep", source).returncode == 0
    assert run("store", "add", "--store", str(store), "--name", "w", source).returncode == 0
    before = snapshot(store)
    outside = tmp_path / "abs"
    for version in ("", "../../x", str(outside), ".", "..", "1/2"):
        result = run(
            "store", "add", "--store", str(store), "--name", "w", "--version", version, source
        )
        assert result.returncode == 2, version
        assert "the store was not changed" in result.stderr
    assert snapshot(store) == before
    assert not outside.exists() and not (tmp_path / "x").exists()
    listed = run("store", "list", "--store", str(store)).stdout
    assert "keep" in listed and "w " in listed
