"""A real TorchServe serving the packaged MARs answers as modelplane's Torch predictor.

`modelplane torchserve package` writes KServe's layout (config/config.properties,
model-store/*.mar); TorchServe (Java frontend, Python workers) is started on
loopback ports with the `kservev2` envelope KServe's runtime uses for protocol
v2, and its probabilities are compared with a real `modelplane serve` of the same
store entries. Both servers run as subprocesses: kserve and tritonclient define
clashing protobufs in one process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

from predictors.torchserve.package import Ports, config_properties
from predictors.training import build, datasets
from tests.support import MODEL_STORE, MODELPLANE, REPO, free_port, start_server

pytest.importorskip("ts", reason="the torchserve extra (pip torchserve) is not installed")
pytest.importorskip("model_archiver", reason="the torchserve extra is not installed")

BIN = Path(sys.executable).parent
JAVA_SETUP = REPO / "scripts" / "test-setup" / "java.sh"
# (served name, store name, V2 input name, classes)
MODELS = [("wine", "wine-torch", "features", 3), ("digits", "digits-torch", "image", 10)]


def java() -> str:
    """Path of java; tries scripts/test-setup/java.sh once, skips if still missing."""
    found = shutil.which("java")
    if found is None:
        try:
            setup = subprocess.run(
                [str(JAVA_SETUP)], capture_output=True, text=True, timeout=900, check=False
            )
            reason = setup.stderr[-500:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        found = shutil.which("java")
        if found is None:
            pytest.skip(f"TorchServe needs Java and {JAVA_SETUP} could not install it: {reason}")
    return found


@dataclass
class TorchServe:
    process: subprocess.Popen[bytes]
    ports: Ports
    env: dict[str, str]
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.inference}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def wait_ready(ts: TorchServe, names: list[str], timeout: float = 90) -> None:
    """Bounded wait until every model has a READY worker."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        if ts.process.poll() is not None:
            raise RuntimeError(f"torchserve exited with {ts.process.returncode}:\n{ts.log()}")
        name = pending[0]
        try:
            reply = httpx.get(f"http://127.0.0.1:{ts.ports.management}/models/{name}", timeout=2)
            workers = reply.json()[0]["workers"] if reply.status_code == 200 else []
            if any(w.get("status") == "READY" for w in workers):
                pending.pop(0)
                continue
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.5)
    if pending:
        raise TimeoutError(f"torchserve models {pending} not ready in {timeout}s:\n{ts.log()}")


def stop(ts: TorchServe) -> None:
    """`torchserve --stop`, then the whole process group (frontend and workers)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            [str(BIN / "torchserve"), "--stop"],
            env=ts.env,
            capture_output=True,
            timeout=30,
            check=False,
        )
    pgid = ts.process.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    # The frontend (java) and the Python workers may outlive the leader for a
    # moment: wait, bounded, for the whole group, then kill what is left.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            ts.process.wait(0.2)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        ts.process.wait(10)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Torch models packaged by the CLI, in KServe's layout."""
    out = tmp_path_factory.mktemp("torchserve") / "layout"
    done = subprocess.run(
        [MODELPLANE, "torchserve", "package", "--store", str(MODEL_STORE), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def torchserve(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServe]:
    java()
    work = tmp_path_factory.mktemp("torchserve-run")
    ports = Ports("127.0.0.1", free_port(), free_port(), free_port(), free_port(), free_port())
    config = work / "config.properties"
    config.write_text(
        config_properties(
            [(served, "1") for served, *_ in MODELS],
            model_store=str(packaged / "model-store"),
            ports=ports,
        )
    )
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # TorchServe keeps its pid file in the temp dir and its logs under
        # LOG_LOCATION: both stay in this test's folder.
        "TMPDIR": str(work),
        "LOG_LOCATION": str(work / "logs"),
        "METRICS_LOCATION": str(work / "logs"),
        # What KServe's runtime sets for protocol v2 (read through
        # enable_envvars_config=true in config.properties).
        "TS_SERVICE_ENVELOPE": "kservev2",
    }
    log_path = work / "torchserve.log"
    cmd = [
        str(BIN / "torchserve"),
        "--start",
        "--foreground",
        "--ncs",  # no config snapshots: nothing is written outside work/
        "--disable-token-auth",
        "--model-store",
        str(packaged / "model-store"),
        "--ts-config",
        str(config),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True
        )
    ts = TorchServe(process, ports, env, log_path)
    try:
        wait_ready(ts, [served for served, *_ in MODELS])
        yield ts
    finally:
        stop(ts)


@pytest.fixture(scope="module")
def modelplane_torch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_server(
        MODEL_STORE,
        tmp_path_factory.mktemp("serve"),
        "--models",
        ",".join(store for _, store, *_ in MODELS),
    )
    try:
        yield server.http_url
    finally:
        server.stop()


def test_layout_is_what_kserve_torchserve_expects(packaged: Path) -> None:
    assert sorted(p.name for p in packaged.iterdir()) == ["config", "model-store"]
    assert sorted(p.name for p in (packaged / "model-store").iterdir()) == [
        "digits.mar",
        "wine.mar",
    ]
    props = dict(
        line.split("=", 1)
        for line in (packaged / "config" / "config.properties").read_text().splitlines()
    )
    assert props["inference_address"] == "http://0.0.0.0:8085"
    assert props["metrics_address"] == "http://0.0.0.0:8082"
    assert props["grpc_inference_port"] == "7070"
    assert props["enable_envvars_config"] == "true"
    assert props["model_store"] == "/mnt/models/model-store"
    snapshot = json.loads(props["model_snapshot"])
    assert sorted(snapshot["models"]) == ["digits", "wine"]
    assert snapshot["models"]["wine"]["1"]["marName"] == "wine.mar"
    with zipfile.ZipFile(packaged / "model-store" / "wine.mar") as mar:
        assert {"model.pt", "metadata.json", "handler.py", "MAR-INF/MANIFEST.json"} <= set(
            mar.namelist()
        )
        manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        assert manifest["model"]["modelName"] == "wine"
        assert manifest["model"]["handler"] == "handler.py"
        assert mar.read("model.pt") == (MODEL_STORE / "wine-torch" / "1" / "model.pt").read_bytes()


def modelplane_infer(url: str, model: str, input_name: str, x: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url)
    inp = httpclient.InferInput(input_name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp]).as_numpy("probabilities")


@pytest.mark.parametrize("served,store,input_name,classes", MODELS)
def test_torchserve_matches_the_modelplane_torch_predictor(
    torchserve: TorchServe,
    modelplane_torch: str,
    served: str,
    store: str,
    input_name: str,
    classes: int,
) -> None:
    x = getattr(datasets, served)(build.SEED).x_test[:64]
    expected = modelplane_infer(modelplane_torch, store, input_name, x)
    body = {
        "id": f"req-{served}",
        "inputs": [
            {"name": input_name, "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}
        ],
    }
    reply = httpx.post(torchserve.url(f"/v2/models/{served}/infer"), json=body, timeout=30)
    assert reply.status_code == 200, reply.text + torchserve.log()
    answer = reply.json()
    assert answer["id"] == f"req-{served}"
    assert answer["model_name"] == served
    (output,) = answer["outputs"]
    # The kservev2 envelope flattens each output and names it after the input.
    assert output["datatype"] == "FP32"
    probs = np.asarray(output["data"], dtype=np.float32).reshape(len(x), classes)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_torchserve_rejects_a_wrong_shape(torchserve: TorchServe) -> None:
    body = {
        "inputs": [{"name": "features", "shape": [1, 12], "datatype": "FP32", "data": [0] * 12}]
    }
    reply = httpx.post(torchserve.url("/v2/models/wine/infer"), json=body, timeout=30)
    assert reply.status_code == 400
    assert "does not match" in reply.text


# -- the handler on its own: the no-envelope path (POST /predictions/<m>) ----


def handler_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "modelplane_ts_handler", REPO / "predictors" / "torchserve" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def context(model_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(
        system_properties={"model_dir": str(model_dir), "gpu_id": None},
        manifest={"model": {"modelName": "wine", "modelVersion": "1"}},
    )


def test_handler_answers_whole_v2_requests_without_the_envelope() -> None:
    import torch

    module = handler_module()
    ctx = context(MODEL_STORE / "wine-torch" / "1")
    module.handle(None, ctx)  # what TorchServe does at load
    x = datasets.wine(build.SEED).x_test[:5]
    request = {
        "id": "abc",
        "inputs": [{"name": "features", "shape": [5, 13], "datatype": "FP32", "data": x.tolist()}],
    }
    # TorchServe hands over JSON bodies decoded, other bodies as bytes.
    for row in ({"body": request}, {"data": json.dumps(request).encode()}):
        (response,) = module.handle([row], ctx)
        (output,) = response["outputs"]
        assert (output["name"], output["datatype"], output["shape"]) == (
            "probabilities",
            "FP32",
            [5, 3],
        )
        model = torch.jit.load(str(MODEL_STORE / "wine-torch" / "1" / "model.pt"))
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(np.reshape(output["data"], (5, 3)), expected, atol=1e-6)
        assert response["id"] == "abc"


def test_handler_refuses_a_model_with_a_bad_checksum(tmp_path: Path) -> None:
    for name in ("model.pt", "metadata.json"):
        shutil.copy(MODEL_STORE / "wine-torch" / "1" / name, tmp_path / name)
    with (tmp_path / "model.pt").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        handler_module().handle(None, context(tmp_path))
