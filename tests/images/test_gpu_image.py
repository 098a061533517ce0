"""The GPU image builds with no registry, no CUDA base image and no network, and, with no
GPU present, has a complete CUDA stack and serves on the CPU.

Opt-in (`pytest -m gpu_image`, root, scripts/test-setup/docker.sh): the first
run downloads about 3 GB of wheels into .work/images/wheelhouse-gpu and builds
a 4 GB image; later runs reuse both. What a GPU-less machine can prove is
checked here: onnxruntime's CUDA execution provider and torch's CUDA backend
are there, built for one CUDA, and every library they link resolves inside the
image to one copy, except the NVIDIA driver's libcuda.so.1, which the NVIDIA
container toolkit mounts on a GPU node. What only a GPU can show (kernels run)
is for `pytest -m gpu` on a GPU machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from predictors.local_server import free_port
from tests.images.conftest import REPO, UID, Docker, pinned_torch, start, wait_http_ready

pytestmark = [pytest.mark.image, pytest.mark.gpu_image, pytest.mark.timeout(3600)]

SITE = "/opt/modelplane/lib/python3.11/site-packages"
# The driver's library: on a GPU node the NVIDIA container toolkit (or GKE's
# device plugin, under /usr/local/nvidia) provides it; it is never in an image.
DRIVER = {"libcuda.so.1"}
# The CUDA libraries of the nvidia-* wheels, by file name stem.
CUDA_LIB = re.compile(
    r"^lib(cudart|cublas|cublasLt|cudnn\w*|cufft|cufftw|curand|cusparse|cusparseLt|cusolver"
    r"|cusolverMg|nvrtc|nvrtc-builtins|nvJitLink|nccl|nvshmem\w*|cupti|cufile\w*|nvblas)\.so"
)


def sh(docker: Docker, image: str, script: str, *opts: str) -> str:
    """Runs a shell script in a throwaway container, offline, as the image's user
    unless opts say otherwise."""
    return docker.run(
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/tmp",
        *opts, "--entrypoint", "sh", image, "-c", script,
    ).stdout  # fmt: skip


def test_gpu_image_has_one_cuda_for_torch_and_onnxruntime(docker: Docker, gpu_image: str) -> None:
    probe = (
        "import json, os, importlib.metadata as md, onnxruntime as ort, torch\n"
        "from onnxruntime.capi import build_and_package_info as b\n"
        "print(json.dumps({'providers': ort.get_available_providers(),\n"
        "    'ort_package': b.package_name, 'ort_cuda': b.cuda_version,\n"
        "    'torch_dist': md.version('torch'), 'torch': torch.__version__,\n"
        "    'torch_cuda': torch.version.cuda,\n"
        "    'cudnn': torch.backends.cudnn.version(),\n"
        "    'cuda_available': torch.cuda.is_available(),\n"
        "    'require': os.environ.get('NVIDIA_REQUIRE_CUDA')}))\n"
    )
    out = sh(docker, gpu_image, f'python3 -c "{probe}" 2>/dev/null')
    info = json.loads(out.strip().splitlines()[-1])
    print(f"\n{gpu_image}: {info}")
    assert "CUDAExecutionProvider" in info["providers"], info["providers"]
    assert info["ort_package"] == "onnxruntime-gpu"
    # PyPI's build of the pin (its wheel says X, torch itself X+cuNNN), not the
    # CPU one (X+cpu, cuda None).
    assert info["torch_dist"] == pinned_torch()
    assert info["torch_cuda"], "torch is a CUDA build"
    cuda_major = info["torch_cuda"].split(".")[0]
    assert info["torch"] == f"{pinned_torch()}+cu{info['torch_cuda'].replace('.', '')}"
    assert info["ort_cuda"].split(".")[0] == cuda_major, "onnxruntime-gpu and torch: one CUDA"
    assert info["cudnn"] and info["cudnn"] // 10000 == 9, "cuDNN 9, which onnxruntime-gpu needs"
    assert info["cuda_available"] is False, "this machine has no GPU"
    # The toolkit refuses a too-old driver with this, before the server starts.
    assert info["require"] == f"cuda>={cuda_major}.0"


def ldd_report(docker: Docker, image: str, files: list[str]) -> dict[str, dict[str, str]]:
    """{file: {soname: resolved path or 'not found'}} with the image's own environment."""
    script = 'for f in "$@"; do echo "== $f"; ldd "$f" || echo "ldd-failed"; done'
    out = docker.run(
        "run", "--rm", "--network", "none", "--entrypoint", "bash", image, "-c", script, "ldd",
        *files,
    ).stdout  # fmt: skip
    report: dict[str, dict[str, str]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith("== "):
            current = line[3:]
            report[current] = {}
        elif line == "ldd-failed":
            report[current]["<ldd>"] = "failed"
        elif "=>" in line:
            name, _, rest = line.strip().partition(" => ")
            report[current][name] = "not found" if "not found" in rest else rest.split(" (")[0]
    return report


def test_cuda_libraries_of_torch_and_onnxruntime_resolve_except_the_driver(
    docker: Docker, gpu_image: str
) -> None:
    listing = sh(docker, gpu_image, f"find {SITE}/torch/lib {SITE}/onnxruntime/capi {SITE}/nvidia "
                 "-name '*.so*' -type f")  # fmt: skip
    files = sorted(listing.split())
    roots = [
        f"{SITE}/onnxruntime/capi/libonnxruntime_providers_cuda.so",
        f"{SITE}/torch/lib/libtorch_cuda.so",
        f"{SITE}/torch/lib/libc10_cuda.so",
        f"{SITE}/torch/lib/libtorch_cuda_linalg.so",
        f"{SITE}/torch/lib/libcaffe2_nvrtc.so",
        f"{SITE}/torch/lib/libtorch_python.so",
    ]
    for root in roots:
        assert root in files, f"{root} missing from the image"
    # Every nvidia library left in the image must be loadable (what could not
    # load was trimmed), and so must everything torch and onnxruntime link,
    # except TensorRT's provider: TensorRT is not in the image.
    checked = [f for f in files if not f.endswith("libonnxruntime_providers_tensorrt.so")]
    report = ldd_report(docker, gpu_image, checked)
    problems = {
        f: sorted(n for n, where in deps.items() if where == "not found" and n not in DRIVER)
        for f, deps in report.items()
    }
    problems = {f: names for f, names in problems.items() if names or "<ldd>" in report[f]}
    assert not problems, f"unresolved libraries: {problems}"
    # One copy: the CUDA execution provider and torch resolve a library to the
    # same file, the one of the nvidia wheels.
    resolved: dict[str, set[str]] = {}
    for deps in report.values():
        for name, where in deps.items():
            if CUDA_LIB.match(name) and where != "not found":
                resolved.setdefault(name, set()).add(os.path.realpath(where))
    assert resolved.keys() >= {"libcublas.so.13", "libcudart.so.13", "libcudnn.so.9"}, resolved
    for name, paths in resolved.items():
        assert len(paths) == 1 and next(iter(paths)).startswith(f"{SITE}/nvidia/"), (name, paths)
    ep = report[roots[0]]
    assert {"libcublas.so.13", "libcublasLt.so.13", "libcudart.so.13"} <= ep.keys(), ep
    assert ep.get("libcuda.so.1") == "not found", "the driver comes from the host, never the image"


def test_each_cuda_library_is_in_the_image_once(docker: Docker, gpu_image: str) -> None:
    # As root: the image's user may not read every folder, and a file it cannot
    # see is still in the image.
    listing = sh(
        docker,
        gpu_image,
        "find / -xdev \\( -type f -o -type l \\) -name 'lib*.so*'",
        "--user",
        "0:0",
    )
    seen: dict[str, list[str]] = {}
    for path in listing.split():
        name = path.rsplit("/", 1)[1]
        if CUDA_LIB.match(name):
            seen.setdefault(name, []).append(path)
    assert {"libcudnn.so.9", "libcublasLt.so.13", "libcufft.so.12"} <= seen.keys(), seen
    dupes = {n: p for n, p in seen.items() if len(p) > 1}
    assert not dupes, f"CUDA libraries in the image more than once: {dupes}"
    # ... and no library of the same kind under another name (a second cuDNN
    # would be libcudnn.so.8 or a copy in onnxruntime/capi).
    stems: dict[str, list[str]] = {}
    for name in seen:
        stems.setdefault(name.split(".so")[0], []).append(name)
    assert all(len(v) == 1 for v in stems.values()), stems
    assert not [p for ps in seen.values() for p in ps if "/onnxruntime/" in p]


def test_gpu_image_metadata_user_and_trim(docker: Docker, gpu_image: str) -> None:
    info = json.loads(docker.run("image", "inspect", gpu_image).stdout)[0]
    cfg = info["Config"]
    assert cfg["User"] == f"{UID}:{UID}"
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "8081/tcp"}
    assert cfg["Entrypoint"] == ["modelplane", "serve"]
    assert cfg["Cmd"] == ["--model_dir", "/mnt/models"]
    assert "/v2/health/live" in " ".join(cfg["Healthcheck"]["Test"])
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert not any(k.upper().endswith(("TOKEN", "SECRET", "PASSWORD")) for k in env)
    size_gb = info["Size"] / 1e9
    print(f"\n{gpu_image}: {size_gb:.2f} GB; timings: {docker.timings}")
    # torch + the CUDA libraries both need: well under the 5.6 GB untrimmed.
    assert size_gb < 5.0, f"image is {size_gb:.2f} GB"

    out = sh(
        docker,
        gpu_image,
        "id -u; id -g; command -v pip || echo no-pip; "
        "python3 -c 'import triton' 2>/dev/null && echo triton || echo no-triton; "
        f"ls {SITE}/nvidia/cu13/lib/libcusolverMg.so.12 2>/dev/null || echo no-cusolverMg; "
        f"find {SITE}/nvidia -name '*.a' -o -name '*.bc' -o -name include | wc -l; "
        "test -w /opt/modelplane && echo venv-writable || echo venv-readonly; "
        'for d in $(echo "$LD_LIBRARY_PATH" | tr : " "); do '
        '  case "$d" in /opt/*) test -d "$d" || echo "missing $d";; esac; done; echo end',
    ).split()
    assert out[:2] == [str(UID), str(UID)]
    assert out[2] == "no-pip", "the runtime image installs nothing"
    assert out[3] == "no-triton", "torch.compile's compiler is trimmed"
    assert out[4] == "no-cusolverMg"
    assert out[5] == "0", "no headers, static or bitcode archives"
    assert out[6] == "venv-readonly"
    assert out[7:] == ["end"], f"LD_LIBRARY_PATH names folders that are not there: {out[7:]}"


@pytest.fixture(scope="module")
def store_with_export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bundled store plus a torch.export program (.pt2), the format that would
    need torch's compile stack if any did."""
    store = tmp_path_factory.mktemp("gpu-store") / "store"
    shutil.copytree(REPO / "model-store", store)
    work = store.parent
    make = (
        "import torch, numpy as np\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))\n"
        "x = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 8\n"
        "b = torch.export.Dim('batch', min=1, max=64)\n"
        "ep = torch.export.export(m.eval(), (x,), dynamic_shapes=({0: b},))\n"
        f"torch.export.save(ep, '{work}/mlp.pt2')\n"
        f"np.save('{work}/mlp-x.npy', x.numpy())\n"
        f"np.save('{work}/mlp-y.npy', m(x).detach().numpy())\n"
    )
    subprocess.run([sys.executable, "-c", make], check=True, timeout=300)
    modelplane = Path(sys.executable).with_name("modelplane")
    added = subprocess.run(
        [str(modelplane), "store", "add", "--store", str(store), "--name", "export-mlp",
         "--input-name", "features", "--output-name", "scores", str(work / "mlp.pt2")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    for path in [store, *store.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    store.chmod(0o755)
    yield store


@pytest.fixture(scope="module")
def served(
    docker: Docker, gpu_image: str, store_with_export: Path
) -> Iterator[tuple[str, int, int]]:
    http_port, grpc_port = free_port(), free_port()
    name = start(
        docker,
        gpu_image,
        "--model_dir", "/mnt/models", "--device", "auto", "--host", "127.0.0.1",
        "--http_port", str(http_port), "--grpc_port", str(grpc_port),
        run_opts=("-v", f"{store_with_export}:/mnt/models:ro"),
    )  # fmt: skip
    wait_http_ready(docker, name, http_port, timeout=300)
    yield name, http_port, grpc_port


def test_gpu_image_serves_on_cpu_without_a_gpu(
    docker: Docker, served: tuple[str, int, int], store_with_export: Path
) -> None:
    import onnxruntime as ort

    _, http_port, grpc_port = served
    smoke = subprocess.run(
        [str(REPO / "scripts/smoke"), "--http", f"127.0.0.1:{http_port}",
         "--grpc", f"127.0.0.1:{grpc_port}", "--timeout", "120"],
        cwd=REPO, env={**os.environ, "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "smoke passed: 5 model(s) over HTTP and gRPC" in smoke.stdout, smoke.stdout

    # The same answers as onnxruntime on this machine, over both protocols.
    batch = np.linspace(0, 1, 3 * 64, dtype=np.float32).reshape(3, 1, 8, 8)
    session = ort.InferenceSession(
        str(REPO / "model-store/digits-onnx/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    hclient = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
    gclient = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    for model in ("digits-onnx", "digits-torch"):
        hin = httpclient.InferInput("image", list(batch.shape), "FP32")
        hin.set_data_from_numpy(batch)
        hout = hclient.infer(model, [hin]).as_numpy("probabilities")
        gin = grpcclient.InferInput("image", list(batch.shape), "FP32")
        gin.set_data_from_numpy(batch)
        gout = gclient.infer(model, [gin]).as_numpy("probabilities")
        np.testing.assert_allclose(hout, gout, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(hout.argmax(axis=1), expected.argmax(axis=1))
        if model == "digits-onnx":
            np.testing.assert_allclose(hout, expected, rtol=1e-4, atol=1e-5)
        assert hclient.get_model_metadata(model)["parameters"]["device"] == "cpu"

    # The torch.export program runs without triton (trimmed from the image).
    x = np.load(store_with_export.parent / "mlp-x.npy")
    gin = grpcclient.InferInput("features", list(x.shape), "FP32")
    gin.set_data_from_numpy(x)
    y = gclient.infer("export-mlp", [gin]).as_numpy("scores")
    np.testing.assert_allclose(y, np.load(store_with_export.parent / "mlp-y.npy"), atol=1e-5)


def test_gpu_image_says_why_it_runs_on_cpu(docker: Docker, served: tuple[str, int, int]) -> None:
    """`--device auto` with no GPU: one log line says that it falls back to the CPU and why."""
    name, _, _ = served
    logs = docker.run("logs", name)
    text = logs.stdout + logs.stderr
    match = re.search(r"device auto: no CUDA device \((?P<reason>.+)\); running on cpu", text)
    assert match and match.group("reason").strip(), (
        "no log line 'device auto: no CUDA device (<reason>); running on cpu':\n" + text[-4000:]
    )


def test_gpu_image_turns_healthy_with_its_default_command(
    docker: Docker, gpu_image: str, store_with_export: Path
) -> None:
    # No arguments, no network: the default CMD serves /mnt/models on 8080,
    # which the HEALTHCHECK calls; then an inference from inside.
    name = start(
        docker, gpu_image, network="none",
        run_opts=("-v", f"{store_with_export}:/mnt/models:ro"),
    )  # fmt: skip
    deadline = time.monotonic() + 300
    status = ""
    while time.monotonic() < deadline:
        status = docker.run("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
        running = docker.run("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if status in ("healthy", "unhealthy") or running != "true":
            break
        time.sleep(2)
    logs = docker.run("logs", name, check=False)
    assert status == "healthy", f"health {status!r}:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"
    call = (
        "import json, urllib.request as u\n"
        "body = json.dumps({'inputs': [{'name': 'features', 'datatype': 'FP32', 'shape': [1, 13],"
        " 'data': [13.2,1.78,2.14,11.2,100,2.65,2.76,0.26,1.28,4.38,1.05,3.4,1050]}]}).encode()\n"
        "r = json.load(u.urlopen(u.Request('http://127.0.0.1:8080/v2/models/wine-onnx/infer',"
        " data=body)))\n"
        "print(json.dumps(r['outputs'][0]['data']))\n"
    )
    probs = json.loads(docker.run("exec", name, "python3", "-c", call).stdout)
    assert len(probs) == 3 and abs(sum(probs) - 1) < 1e-4 and int(np.argmax(probs)) == 0
