"""Loading a model file never runs code it carries, and a model cannot read host files.

Each attack is built the way an attacker would: a real torch.export archive
or TorchScript file, edited so that loading or running it does something a
model must not (here: create a marker file). Before the fix, `store add` and
`serve` both ran the payload (torch's archive loader unpickles with
weights_only=False; see predictors/runtimes/torch_files.py).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest
import torch
from torch import nn

from tests.support import MODEL_STORE, MODELPLANE, start_server


class Payload:
    """Unpickling this creates the marker file: arbitrary code, as any pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def exported(path: Path) -> Path:
    module = nn.Sequential(nn.Linear(4, 3)).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(module, (torch.zeros(2, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def rewrite(archive: Path, replace: dict[str, bytes]) -> None:
    """Rewrite members of a zip (by name suffix), keeping the rest."""
    original = archive.with_suffix(".orig")
    shutil.move(archive, original)
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(archive, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new
            dst.writestr(info, data)
    original.unlink()


def pickled_weight(path: Path, marker: Path) -> Path:
    exported(path)
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("model_weights_config.json"))
        config = json.loads(archive.read(name))
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    rewrite(
        path,
        {
            "model_weights_config.json": json.dumps(config).encode(),
            f"data/weights/{first['path_name']}": torch_saved(Payload(marker)),
        },
    )
    return path


def pickled_sample_inputs(path: Path, marker: Path) -> Path:
    exported(path)
    rewrite(path, {"data/sample_inputs/model.pt": torch_saved(Payload(marker))})
    return path


def torch_saved(obj: object) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    return buffer.getvalue()


class ReadsHostFile(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        leaked = torch.from_file("/etc/hostname", shared=False, size=4, dtype=torch.uint8)
        return x + leaked[:1].to(x.dtype)


@pytest.mark.parametrize("attack", [pickled_weight, pickled_sample_inputs])
def test_pickles_in_a_pt2_run_neither_in_store_add_nor_in_serve(tmp_path: Path, attack) -> None:
    marker = tmp_path / "pwned"
    model = attack(tmp_path / "evil.pt2", marker)
    added = subprocess.run(
        [MODELPLANE, "store", "add", "--store", str(tmp_path / "store"), "--name", "evil",
         str(model)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 2
    assert "pickle" in added.stderr and "the store was not changed" in added.stderr
    assert not marker.exists(), "store add ran the pickle"
    assert not (tmp_path / "store" / "evil").exists()

    # Served bare (a KServe storageUri): the model fails, its code never runs.
    mount = tmp_path / "models"
    mount.mkdir()
    shutil.copyfile(model, mount / "model.pt2")
    (tmp_path / "ok").mkdir()
    store = tmp_path / "ok"
    (store / "wine-onnx").symlink_to(MODEL_STORE / "wine-onnx")
    (store / "evil").mkdir()
    (store / "evil" / "1").symlink_to(mount, target_is_directory=True)
    server = start_server(store, tmp_path)
    try:
        ready = httpx.get(f"http://{server.http_url}/v2/models/evil/ready")
        assert ready.status_code == 503
        assert "pickle" in ready.json()["error"]
        assert httpx.get(f"http://{server.http_url}/v2/models/wine-onnx/ready").status_code == 200
    finally:
        server.stop()
    assert not marker.exists(), "serve ran the pickle"


def test_torchscript_that_reads_host_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "leaky.pt"
    torch.jit.script(ReadsHostFile()).save(str(path))
    added = subprocess.run(
        [MODELPLANE, "store", "add", "--store", str(tmp_path / "store"), "--name", "leaky",
         "--input-shape=-1,4", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 2
    assert "aten::from_file, which reads or writes host files" in added.stderr


def test_an_ordinary_pt2_still_loads(tmp_path: Path) -> None:
    from predictors.runtimes.torch_files import load_exported_program

    program = load_exported_program(exported(tmp_path / "fine.pt2"))
    assert program.module()(torch.ones(1, 4)).shape == (1, 3)
