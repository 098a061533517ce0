"""The chart on a real cluster: install, InferenceServices Ready, V2 over HTTP and gRPC."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.e2e.conftest import KUBECTL, REPO, Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

MODELS = ["digits-onnx", "digits-torch", "wine-onnx", "wine-torch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def deployed(cluster: Cluster) -> Iterator[Cluster]:
    """scripts/deploy with the PVC example: the store copied in, the chart installed, Ready."""
    proc = subprocess.run(
        [str(REPO / "scripts/deploy"), "--namespace", cluster.namespace,
         "--release", cluster.release, "--no-monitoring"],
        cwd=REPO, env={**cluster.env, "DEPLOY_TIMEOUT": "900"}, capture_output=True,
        text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    yield cluster


def test_every_inferenceservice_is_ready(deployed: Cluster) -> None:
    out = deployed.kubectl("get", "inferenceservices", "-o", "json")
    assert out.returncode == 0, out.stderr
    items = {i["metadata"]["name"]: i for i in json.loads(out.stdout)["items"]}
    assert set(items) == set(MODELS)
    for name, isvc in items.items():
        conds = {c["type"]: c["status"] for c in isvc["status"].get("conditions", [])}
        assert conds.get("Ready") == "True", (name, conds)


@pytest.mark.parametrize("model", ["digits-onnx", "wine-torch"])
def test_infer_over_http_and_grpc(deployed: Cluster, model: str) -> None:
    pods = deployed.kubectl(
        "get", "pods", "-l", f"serving.kserve.io/inferenceservice={model}",
        "--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].metadata.name}",
    )  # fmt: skip
    assert pods.returncode == 0 and pods.stdout, pods.stderr
    hport, gport = free_port(), free_port()
    pf = subprocess.Popen(
        [KUBECTL, "--context", deployed.context, "-n", deployed.namespace, "port-forward",
         "--address", "127.0.0.1", f"pod/{pods.stdout}", f"{hport}:8080", f"{gport}:8081"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=deployed.env,
    )  # fmt: skip
    try:
        hclient = httpclient.InferenceServerClient(url=f"127.0.0.1:{hport}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if hclient.is_model_ready(model):
                    break
            except Exception:  # the port-forward is still starting
                pass
            assert time.monotonic() < deadline, f"{model} not reachable through port-forward"
            time.sleep(1)
        meta = hclient.get_model_metadata(model)
        spec = meta["inputs"][0]
        shape = [2, *[int(d) for d in spec["shape"][1:]]]
        data = np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        hin = httpclient.InferInput(spec["name"], shape, "FP32")
        hin.set_data_from_numpy(data)
        out_name = meta["outputs"][0]["name"]
        hout = hclient.infer(model, [hin]).as_numpy(out_name)
        gclient = grpcclient.InferenceServerClient(url=f"127.0.0.1:{gport}")
        gin = grpcclient.InferInput(spec["name"], shape, "FP32")
        gin.set_data_from_numpy(data)
        gout = gclient.infer(model, [gin]).as_numpy(out_name)
        assert hout.shape[0] == 2
        np.testing.assert_allclose(hout, gout, rtol=1e-5, atol=1e-6)
    finally:
        pf.terminate()
        pf.wait(timeout=10)


def test_smoke_script_passes(deployed: Cluster) -> None:
    proc = subprocess.run(
        [str(REPO / "scripts/smoke"), "--namespace", deployed.namespace],
        cwd=REPO, env=deployed.env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"smoke passed for {len(MODELS)} model(s)" in proc.stderr
