"""A bad folder, file or setting costs one model, never the server or a host file.

Each case is what a store on a shared volume ends up holding on a bad day:
a metadata.json or folder the server may not read, a file that is not UTF-8,
metadata pointing at host files, settings no request can pass, ONNX weights
kept beside the graph. Before the fix, the unreadable ones made `serve` exit
with a traceback (every model down), `/etc/passwd` in `files` was hashed and
its digest prefix shown to clients, and the bad settings went READY.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper, numpy_helper

from tests.support import MODEL_STORE, MODELPLANE, free_port, start_server

NOBODY = 65534


@pytest.fixture
def shared_store() -> Iterator[Path]:
    """A store a non-root server can read (pytest's tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="mp-store-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for root, dirs, _ in os.walk(folder):
            for d in dirs:
                (Path(root) / d).chmod(0o755)
        shutil.rmtree(folder)


def copy_model(store: Path, source: str, name: str) -> Path:
    target = store / name
    shutil.copytree(MODEL_STORE / source, target)
    meta_path = target / "1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["name"] = name
    meta_path.write_text(json.dumps(meta))
    for root, _dirs, files in os.walk(target):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(Path(root) / f, 0o644)
    return target


def ready(server, name: str) -> httpx.Response:
    return httpx.get(f"http://{server.http_url}/v2/models/{name}/ready")


def test_unreadable_files_and_folders_fail_only_their_model(
    shared_store: Path, tmp_path: Path
) -> None:
    copy_model(shared_store, "wine-onnx", "good")
    (copy_model(shared_store, "wine-onnx", "secret-meta") / "1" / "metadata.json").chmod(0)
    (copy_model(shared_store, "wine-onnx", "secret-version") / "1").chmod(0)
    copy_model(shared_store, "wine-onnx", "secret-model").chmod(0)
    not_utf8 = copy_model(shared_store, "wine-onnx", "latin1") / "1" / "metadata.json"
    not_utf8.write_bytes(b'{"name": "caf\xe9"}')
    user = NOBODY if os.geteuid() == 0 else None
    server = start_server(shared_store, tmp_path, user=user)
    try:
        assert ready(server, "good").status_code == 200
        expected = {
            "secret-meta": "secret-meta/1/metadata.json cannot be read: Permission denied",
            "secret-version": "secret-version version 1: its folder cannot be read",
            "secret-model": "secret-model version 1: its folder cannot be read",
            "latin1": "latin1/1/metadata.json is not UTF-8 text",
        }
        for name, message in expected.items():
            answer = ready(server, name)
            assert answer.status_code == 503, name
            assert message in answer.json()["error"], answer.json()
            assert str(shared_store) not in answer.text  # no host paths
    finally:
        server.stop()


def test_metadata_cannot_point_at_host_files(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    absolute = copy_model(store, "wine-onnx", "absolute") / "1" / "metadata.json"
    meta = json.loads(absolute.read_text())
    meta["files"]["/etc/passwd"] = "0" * 64
    absolute.write_text(json.dumps(meta))
    linked = copy_model(store, "wine-onnx", "linked") / "1"
    meta = json.loads((linked / "metadata.json").read_text())
    (linked / "model.onnx").unlink()
    (linked / "model.onnx").symlink_to("/etc/hostname")
    (store / "wine-onnx").symlink_to(MODEL_STORE / "wine-onnx")
    server = start_server(store, tmp_path)
    try:
        answer = ready(server, "absolute")
        assert answer.status_code == 503
        # The entry is named, its host path redacted like any other in a client's view.
        assert "files entry '<path>' is not a file inside the version folder" in answer.text
        answer = ready(server, "linked")
        assert answer.status_code == 503
        assert "model.onnx points outside its version folder" in answer.text
        # The symlinked model folder of the store itself is fine.
        assert ready(server, "wine-onnx").status_code == 200
        metadata = httpx.get(f"http://{server.http_url}/v2/models/linked").text
        assert "checksum" not in metadata and "passwd" not in metadata
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("batching", "message"),
    [
        ({"enabled": True, "max_rows": 32, "max_queue_delay_ms": 1e9}, "must be between 0 and"),
        ({"enabled": True, "max_rows": 0, "max_queue_delay_ms": 0}, "max_rows must be a whole"),
    ],
)
def test_settings_no_request_can_pass_do_not_go_ready(
    tmp_path: Path, batching: dict, message: str
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    meta_path = copy_model(store, "wine-onnx", "bad") / "1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["batching"] = batching
    meta_path.write_text(json.dumps(meta))
    (store / "wine-onnx").symlink_to(MODEL_STORE / "wine-onnx")
    server = start_server(store, tmp_path)
    try:
        answer = ready(server, "bad")
        assert answer.status_code == 503
        assert message in answer.json()["error"]
    finally:
        server.stop()


def test_bad_batching_flags_are_refused_at_start() -> None:
    result = subprocess.run(
        [MODELPLANE, "serve", "--model_dir", str(MODEL_STORE), "--batching", "on",
         "--max_queue_delay_ms", "1e9", "--http_port", str(free_port()),
         "--grpc_port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "batching.max_queue_delay_ms must be between 0 and 10000" in result.stderr


def external_data_model(folder: Path) -> Path:
    """y = x @ W with W (64 x 4) stored in weights.bin beside model.onnx."""
    weights = np.arange(256, dtype=np.float32).reshape(64, 4) / 256
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True)
    onnx.save_model(
        model, str(folder / "model.onnx"), save_as_external_data=True,
        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0,
    )  # fmt: skip
    return folder / "model.onnx"


def test_onnx_external_data_is_imported_with_the_graph(tmp_path: Path) -> None:
    source = external_data_model(tmp_path / "src")
    store = tmp_path / "store"
    added = subprocess.run(
        [MODELPLANE, "store", "add", "--store", str(store), "--name", "ext", str(source)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    meta = json.loads((store / "ext" / "1" / "metadata.json").read_text())
    assert set(meta["files"]) == {"model.onnx", "weights.bin"}
    shutil.rmtree(tmp_path / "src")  # served from the store alone
    server = start_server(store, tmp_path)
    try:
        x = np.ones((2, 64), np.float32)
        client = grpcclient.InferenceServerClient(server.grpc_url)
        inp = grpcclient.InferInput("x", [2, 64], "FP32")
        inp.set_data_from_numpy(x)
        weights = np.arange(256, dtype=np.float32).reshape(64, 4) / 256
        np.testing.assert_allclose(client.infer("ext", [inp]).as_numpy("y"), x @ weights, rtol=1e-6)
    finally:
        server.stop()
    # The weights are checksummed too: a changed weights.bin fails the model.
    with (store / "ext" / "1" / "weights.bin").open("r+b") as fh:
        fh.write(b"\xff\xff\xff\xff")
    verify = subprocess.run(
        [MODELPLANE, "store", "verify", "--store", str(store)], capture_output=True, text=True
    )
    assert verify.returncode == 1
    assert "weights.bin checksum mismatch" in verify.stdout
