"""The CPU image builds with no registry and no network, and serves V2 over HTTP and gRPC.

Run with `pytest -m image` (root, Debian's docker.io and debootstrap installed:
scripts/test-setup/docker.sh). Cold (nothing cached) this debootstraps a
base, makes a wheelhouse and builds the image; warm it reuses all three.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from predictors.local_server import free_port
from tests.images.conftest import REPO, UID, Docker, pinned_torch, start, wait_http_ready

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

MODELS = ["digits-onnx", "digits-torch", "wine-onnx", "wine-torch"]


def test_image_serves_a_mounted_store_over_http_and_grpc(docker: Docker, cpu_image: str) -> None:
    http_port, grpc_port = free_port(), free_port()
    # Mounted read-only at /mnt/models, as KServe's storage initializer does,
    # and run as the chart's runAsUser/runAsGroup.
    name = start(
        docker,
        cpu_image,
        "--model_dir",
        "/mnt/models",
        "--host",
        "127.0.0.1",
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
        run_opts=("-v", f"{REPO / 'model-store'}:/mnt/models:ro", "--user", f"{UID}:{UID}"),
    )
    wait_http_ready(docker, name, http_port)

    # The same smoke test `scripts/smoke` runs through kubectl port-forward.
    smoke = subprocess.run(
        [
            str(REPO / "scripts/smoke"),
            "--http",
            f"127.0.0.1:{http_port}",
            "--grpc",
            f"127.0.0.1:{grpc_port}",
            "--timeout",
            "60",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "smoke passed: 4 model(s) over HTTP and gRPC" in smoke.stdout

    # And directly with tritonclient: a batch of 3 digits, both protocols agree.
    batch = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 1, 8, 8)
    hclient = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
    hin = httpclient.InferInput("image", list(batch.shape), "FP32")
    hin.set_data_from_numpy(batch)
    hout = hclient.infer("digits-onnx", [hin]).as_numpy("probabilities")
    gclient = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    gin = grpcclient.InferInput("image", list(batch.shape), "FP32")
    gin.set_data_from_numpy(batch)
    gout = gclient.infer("digits-onnx", [gin]).as_numpy("probabilities")
    assert hout.shape == gout.shape == (3, 10)
    np.testing.assert_allclose(hout, gout, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hout.sum(axis=1), 1.0, atol=1e-4)
    for model in MODELS:
        assert gclient.is_model_ready(model)

    # Kubernetes stops pods with SIGTERM: the server must exit by itself well
    # before the kill that follows the grace period.
    t0 = time.monotonic()
    docker.run("stop", "--time", "30", name)
    stopped_in = time.monotonic() - t0
    code = int(docker.run("inspect", "--format", "{{.State.ExitCode}}", name).stdout)
    assert stopped_in < 25 and code != 137, f"stopped in {stopped_in:.1f}s with exit code {code}"


def test_image_metadata_user_ports_and_contents(docker: Docker, cpu_image: str) -> None:
    info = json.loads(docker.run("image", "inspect", cpu_image).stdout)[0]
    cfg = info["Config"]
    assert cfg["User"] == f"{UID}:{UID}", "numeric non-root user (the chart's runAsUser)"
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "8081/tcp"}
    assert cfg["Entrypoint"] == ["modelplane", "serve"]
    assert cfg["Cmd"] == ["--model_dir", "/mnt/models"]
    assert "/v2/health/live" in " ".join(cfg["Healthcheck"]["Test"])
    assert not any(
        k.split("=")[0].upper().endswith(("TOKEN", "SECRET", "PASSWORD")) for k in cfg["Env"]
    )
    size_gb = info["Size"] / 1e9
    # A CUDA torch alone is several GB: staying under 2 GB proves the CPU build.
    assert size_gb < 2.0, f"image is {size_gb:.2f} GB"
    print(f"\n{cpu_image}: {size_gb:.2f} GB; timings: {docker.timings}")

    probe = docker.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        cpu_image,
        "-c",
        "id -u; id -g; command -v pip || echo no-pip; "
        "python3 -c 'import torch; print(torch.__version__, torch.version.cuda)'; "
        "test -w /opt/modelplane && echo venv-writable || echo venv-readonly",
    ).stdout.split()
    assert probe[:2] == [str(UID), str(UID)]
    assert probe[2] == "no-pip", "the runtime image installs nothing"
    assert probe[3] == f"{pinned_torch()}+cpu" and probe[4] == "None", probe
    assert probe[5] == "venv-readonly", "the non-root user cannot change the installed code"


def test_baked_image_serves_with_its_default_command(docker: Docker, baked_image: str) -> None:
    # No arguments, no mounts, no network: the default CMD serves the store
    # baked at /mnt/models, and the HEALTHCHECK (port 8080 inside) turns healthy.
    name = start(docker, baked_image, network="none")
    deadline = time.monotonic() + 180
    status = ""
    while time.monotonic() < deadline:
        status = docker.run("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
        if (
            status in ("healthy", "unhealthy")
            or docker.run("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            != "true"
        ):
            break
        time.sleep(2)
    logs = docker.run("logs", name, check=False)
    assert status == "healthy", f"health {status!r}:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"
    check = (
        "import urllib.request as u\n"
        f"for m in {MODELS!r}:\n"
        "    assert u.urlopen(f'http://127.0.0.1:8080/v2/models/{m}/ready').status == 200, m\n"
        "print('all ready')\n"
    )
    out = docker.run("exec", name, "python3", "-c", check).stdout
    assert "all ready" in out
