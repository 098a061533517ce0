"""The predictor container the chart declares, started locally and called.

No cluster: the predictor container KServe would run (the ServingRuntime's
container with the InferenceService's model fields merged in, args appended and
{{.Name}} filled: kserve_rules.predictor_pod) is run as it is, with what the
cluster would provide substituted: /mnt/models by the repo's
model-store/<name>/<version> the storageUri points at, loopback and free ports
for 8080/8081, and a temp folder for the /tmp emptyDir. Then the probes the
chart declares are polled and the model is called with tritonclient over HTTP
and gRPC, by its V2 name: one of the models has a Triton-style name
(digits_onnx.v1), so its InferenceService is digits-onnx-v1 and the server must
answer to the name passed last (--model_name, as KServe appends the model's
args to the runtime's).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kserve_rules
import numpy as np
import pytest
from chart_support import (
    EXAMPLES_DIR,
    REPO_ROOT,
    Manifest,
    by_kind,
    load_values,
    named,
    parse,
    render,
    runtime_for,
)

STARTUP_TIMEOUT_S = 120.0
# The V2 names served (one Triton-style) -> the store folder each reads.
MODELS = {"digits_onnx.v1": "digits-onnx/1", "wine-torch": "wine-torch/1"}


def rendered_objects(**runtimes: Any) -> list[Manifest]:
    """The PVC example with MODELS as its models."""
    values = load_values(EXAMPLES_DIR / "pvc-model-store.yaml")
    claim = values["modelStore"]["pvc"]["name"]
    formats = {m["name"]: m["format"] for m in values["models"]}
    values["models"] = [
        {"name": name, "format": formats[path.split("/")[0]], "storageUri": f"pvc://{claim}/{path}"}
        for name, path in MODELS.items()
    ]
    if runtimes:
        values["runtimes"] = runtimes
    return parse(render(values))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def store_path(storage_uri: str) -> Path:
    """pvc://<claim>/<name>/<version> (any scheme) -> model-store/<name>/<version>."""
    parsed = urlparse(storage_uri)
    name, version = [*parsed.netloc.split("/"), *parsed.path.strip("/").split("/")][-2:]
    return REPO_ROOT / "model-store" / name / version


def local_executable(container: dict[str, Any]) -> Path:
    """The container's entry point, from the venv running the tests."""
    return Path(sys.executable).parent / container["command"][0]


class Predictor:
    def __init__(self, isvc: Manifest, runtime: Manifest, scratch: Path, log: Path) -> None:
        self.isvc = isvc
        self.pod = kserve_rules.predictor_pod(isvc, runtime)
        (container,) = self.pod["spec"]["containers"]
        self.container = container
        # The V2 name: what the last --model_name says.
        flags = [a for a in container["args"] if a.startswith("--model_name=")]
        self.name = flags[-1].split("=", 1)[1]
        self.ports = {p["containerPort"]: free_port() for p in container["ports"]}
        # Knative runtimes declare HTTP only; gRPC still listens on its port.
        grpc_flag = next(a for a in container["args"] if a.startswith("--grpc_port="))
        self.ports.setdefault(int(grpc_flag.split("=", 1)[1]), free_port())
        self.model_dir = store_path(isvc["spec"]["predictor"]["model"]["storageUri"])
        self.command = self._command()
        self.env = self._env(runtime, scratch)
        self.log = log

    def local(self, port: int) -> int:
        return self.ports[port]

    def _command(self) -> list[str]:
        executable = local_executable(self.container)
        args = []
        for arg in self.container["args"]:
            arg = arg.replace("/mnt/models", str(self.model_dir))
            flag, _, value = arg.partition("=")
            if value.isdigit() and int(value) in self.ports:
                arg = f"{flag}={self.ports[int(value)]}"
            args.append(arg)
        return [str(executable), *self.container["command"][1:], *args, "--host", "127.0.0.1"]

    def _env(self, runtime: Manifest, scratch: Path) -> dict[str, str]:
        empty_dirs = {v["name"] for v in self.pod["spec"].get("volumes", []) if "emptyDir" in v}
        mounts = {
            m["mountPath"]: scratch / m["name"]
            for m in self.container.get("volumeMounts", [])
            if m["name"] in empty_dirs
        }
        env = dict(os.environ)
        for item in self.container.get("env", []):
            value = item["value"]
            for mount_path, local in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    local.mkdir(parents=True, exist_ok=True)
                    value = str(local) + value[len(mount_path) :]
            env[item["name"]] = value
        return env


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    return rendered_objects()


@pytest.fixture(scope="module")
def predictors(
    objects: list[Manifest], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Predictor]]:
    # One model per runtime (ONNX and TorchScript).
    chosen = by_kind(objects, "InferenceService")
    assert sorted(i["metadata"]["name"] for i in chosen) == ["digits-onnx-v1", "wine-torch"]
    (container,) = runtime_for(objects, chosen[0])["spec"]["containers"]
    if not local_executable(container).exists():
        pytest.skip(
            f"{local_executable(container)} is missing: install the project (pip install -e .)"
        )
    started: dict[str, tuple[Predictor, subprocess.Popen[bytes]]] = {}
    try:
        for isvc in chosen:
            root = tmp_path_factory.mktemp(isvc["metadata"]["name"])
            predictor = Predictor(isvc, runtime_for(objects, isvc), root, root / "predictor.log")
            assert predictor.model_dir.is_dir(), predictor.model_dir
            with predictor.log.open("wb") as log:
                process = subprocess.Popen(
                    predictor.command,
                    env=predictor.env,
                    cwd=root,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            started[predictor.name] = (predictor, process)
        for predictor, process in started.values():
            wait_until_ready(predictor, process)
        yield {name: predictor for name, (predictor, _) in started.items()}
    finally:
        for _, process in started.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in started.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def wait_until_ready(predictor: Predictor, process: subprocess.Popen[bytes]) -> None:
    """Poll the readiness probe the InferenceService declares, as the kubelet would."""
    probe = predictor.container["readinessProbe"]["httpGet"]
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"{' '.join(predictor.command)} exited with {process.returncode}:\n"
                + predictor.log.read_text(errors="replace")[-4000:]
            )
        if http_get(predictor.local(probe["port"]), probe["path"])[0] == 200:
            return
        time.sleep(0.5)
    log = predictor.log.read_text(errors="replace")[-4000:]
    pytest.fail(f"{predictor.name} not ready after {STARTUP_TIMEOUT_S}s:\n{log}")


def request_inputs(model_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    rng = np.random.default_rng(0)
    data = {
        tensor["name"]: rng.random(
            [2 if dim == -1 else dim for dim in tensor["shape"]], dtype=np.float32
        )
        for tensor in metadata["inputs"]
    }
    return metadata, data


@pytest.mark.parametrize("model", list(MODELS))
def test_declared_probes_answer(predictors: dict[str, Predictor], model: str) -> None:
    predictor = predictors[model]
    liveness = predictor.container["livenessProbe"]["httpGet"]
    assert http_get(predictor.local(liveness["port"]), liveness["path"])[0] == 200
    probe = predictor.container["readinessProbe"]["httpGet"]
    assert http_get(predictor.local(probe["port"]), probe["path"])[0] == 200
    # The probe is model-specific: another name is not ready.
    wrong = probe["path"].replace(f"/{model}/", "/no-such-model/")
    assert http_get(predictor.local(probe["port"]), wrong)[0] != 200


def infer(predictor: Predictor, protocol: str) -> np.ndarray:
    """One V2 infer call with tritonclient on the predictor's HTTP or gRPC port."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    metadata, data = request_inputs(predictor.model_dir)
    (output,) = metadata["outputs"]
    module: Any = httpclient if protocol == "http" else grpcclient
    port = predictor.local(8080 if protocol == "http" else 8081)
    client = module.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        assert client.is_model_ready(predictor.name)
        inputs = []
        for tensor in metadata["inputs"]:
            array = data[tensor["name"]]
            item = module.InferInput(tensor["name"], list(array.shape), tensor["datatype"])
            item.set_data_from_numpy(array)
            inputs.append(item)
        result = client.infer(predictor.name, inputs).as_numpy(output["name"])
    finally:
        client.close()
    assert result is not None, f"no {output['name']} in the {protocol} response"
    assert result.shape == (2, output["shape"][1])
    return np.asarray(result)


@pytest.mark.parametrize("model", list(MODELS))
def test_infer_over_http_and_grpc(predictors: dict[str, Predictor], model: str) -> None:
    via_http = infer(predictors[model], "http")
    via_grpc = infer(predictors[model], "grpc")
    np.testing.assert_allclose(via_http.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(via_http, via_grpc, rtol=1e-5)


def test_requests_are_counted_where_the_runtime_says(
    predictors: dict[str, Predictor], objects: list[Manifest]
) -> None:
    """The runtime's prometheus.kserve.io/port and /path lead to the request counter."""
    for model, predictor in predictors.items():
        infer(predictor, "http")
        infer(predictor, "grpc")
        runtime = runtime_for(objects, predictor.isvc)
        port = int(runtime["spec"]["annotations"]["prometheus.kserve.io/port"])
        path = runtime["spec"]["annotations"]["prometheus.kserve.io/path"]
        status, body = http_get(predictor.local(port), path)
        assert status == 200
        counted = [
            line
            for line in body.splitlines()
            if line.startswith("modelplane_requests_total{") and f'model_name="{model}"' in line
        ]
        assert any('protocol="http"' in line for line in counted), counted
        assert any('protocol="grpc"' in line for line in counted), counted


def grpc_health(port: int, service: str) -> int:
    """grpc.health.v1.Health/Check as the kubelet's gRPC probe sends it; the
    ServingStatus (1 = SERVING). Raw protobuf: HealthCheckRequest{1: service},
    HealthCheckResponse{1: status}."""
    import grpc

    encoded = service.encode()
    request = (b"\x0a" + bytes([len(encoded)]) + encoded) if encoded else b""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        response = check(request, timeout=5)
    return response[1] if response[:1] == b"\x08" else 0


@pytest.mark.parametrize("model", list(MODELS))
def test_declared_grpc_readiness_probe_answers(
    predictors: dict[str, Predictor], model: str
) -> None:
    """With runtimes.probes.readinessProtocol grpc, the probe the pod would get
    passes on the running server for its model, and not for another name."""
    import grpc

    objects = rendered_objects(probes={"readinessProtocol": "grpc"})
    isvc = named(objects, "InferenceService", predictors[model].isvc["metadata"]["name"])
    pod = kserve_rules.predictor_pod(isvc, runtime_for(objects, isvc))
    probe = pod["spec"]["containers"][0]["readinessProbe"]["grpc"]
    assert probe["service"] == model
    port = predictors[model].local(probe["port"])
    try:
        status = grpc_health(port, probe["service"])
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("the server does not serve grpc.health.v1.Health yet")
        raise
    assert status == 1, "SERVING"
    assert grpc_health(port, "") == 1, "the server as a whole is ready"
    try:
        other = grpc_health(port, "no-such-model")
    except grpc.RpcError as err:
        other = -1 if err.code() == grpc.StatusCode.NOT_FOUND else 0
    assert other != 1
