"""A private Docker daemon and the images, for the `image` and `gpu_image` tests.

The daemon is Debian's docker.io run by scripts/test-setup/docker.sh with its
own data root, socket and exec root under .work/images/dockerd (no bridge, no
iptables); it is stopped after the session unless it was already running. Its
data root is kept: it is the layer cache that makes a second run quick.
No registry is reachable, so the base image is debootstrapped (cached as a
tarball under .work/images/base) and the image is built with --network none
from a wheelhouse made by this machine's pip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER_SH = REPO / "scripts/test-setup/docker.sh"
BASE_IMAGE = "localhost/modelplane-base:bookworm-python3"
IMAGE = "modelplane/predictor"
GPU_IMAGE = "modelplane/predictor-gpu"
TRAINER_IMAGE = "modelplane/trainer"
TAG = "imagetest"
BAKED_TAG = "imagetest-baked"
# The images' user and group (the chart's runAsUser/runAsGroup/fsGroup).
UID = 10001


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds and runs container images with a local Docker engine"
    )
    config.addinivalue_line(
        "markers",
        "gpu_image: builds the GPU image (3 GB of wheels) and checks it without a GPU; "
        "only with -m gpu_image or MODELPLANE_GPU_IMAGE_TEST=1",
    )


def gpu_image_test_wanted(config: pytest.Config) -> bool:
    return "gpu_image" in (config.getoption("-m") or "") or os.environ.get(
        "MODELPLANE_GPU_IMAGE_TEST", ""
    ) not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_image_test_wanted(config):
        return
    skip = pytest.mark.skip(
        reason="the GPU image test downloads about 3 GB of wheels and builds for several "
        "minutes; run it with `pytest -m gpu_image` (README: GPU)"
    )
    for item in items:
        if "gpu_image" in item.keywords:
            item.add_marker(skip)


@dataclass
class Docker:
    env: dict[str, str]
    containers: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def run(
        self, *args: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def script(self, *argv: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(a) for a in argv],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"{argv} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
            )
        return proc


def pinned_torch() -> str:
    """pyproject.toml's torch pin, through its one reader."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/lib/requirements.py"), "--torch-version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def start(
    docker: Docker,
    image: str,
    *args: str,
    run_opts: tuple[str, ...] = (),
    network: str = "host",
) -> str:
    """Starts a container detached; the session fixture removes it."""
    name = f"mp-imagetest-{os.getpid()}-{len(docker.containers)}"
    docker.containers.append(name)
    # The chart's pod hardening: read-only root, /tmp as scratch with HOME
    # there, no capabilities, no privilege escalation.
    docker.run(
        "run", "-d", "--name", name, "--network", network, "--read-only",
        "--tmpfs", "/tmp", "-e", "HOME=/tmp", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", *run_opts, image, *args,
    )  # fmt: skip
    return name


def wait_http_ready(docker: Docker, name: str, port: int, timeout: float = 180) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = docker.run("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if state != "true":
            break
        try:
            if client.is_server_ready():
                return
        except Exception:  # not listening yet
            pass
        time.sleep(1)
    logs = docker.run("logs", name, check=False)
    raise AssertionError(f"container {name} not ready:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


#: the image title (docker/Dockerfile*, scripts/build-images) of each kind
TITLES = {
    "cpu": "modelplane predictor (CPU)",
    "gpu": "modelplane predictor (GPU)",
    "trainer": "modelplane trainer (CPU)",
}


def prune_stale_builds(docker: Docker, build_output: str, kind: str) -> None:
    """Removes the untagged images that earlier builds of `kind` left behind (a
    GPU rebuild leaves 12 GB): their builder stages and the images the tag moved
    away from. Those this build made or reused stay: the next run's layer cache."""
    current = set(re.findall(r"^ ---> ([0-9a-f]{12})$", build_output, re.M))
    labels = [
        f"io.modelplane.stage={kind}-builder",
        f"io.modelplane.stage={kind}-models",
        f"org.opencontainers.image.title={TITLES[kind]}",
    ]
    stale = []
    for label in labels:
        ids = docker.run(
            "images", "--quiet", "--no-trunc", "--filter", "dangling=true",
            "--filter", f"label={label}",
        ).stdout.split()  # fmt: skip
        stale += [i for i in ids if i.removeprefix("sha256:")[:12] not in current]
    if stale:
        docker.run("rmi", *stale, check=False)


def _why_no_docker() -> str | None:
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        return "dockerd/docker not installed (run scripts/test-setup/docker.sh)"
    if os.geteuid() != 0:
        return "dockerd can only be started as root here (run the image tests as root)"
    return None


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    reason = _why_no_docker()
    if reason:
        pytest.skip(f"cannot start dockerd: {reason}")
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "PYTHON": sys.executable}
    env.pop("DRY_RUN", None)
    already = subprocess.run(
        [str(DOCKER_SH), "status"], capture_output=True, text=True, check=False
    )
    started = subprocess.run(
        [str(DOCKER_SH), "start"], capture_output=True, text=True, check=False, timeout=120
    )
    if started.returncode != 0:
        pytest.skip(f"cannot start dockerd: {started.stderr.strip()[-1500:]}")
    host = next(
        line.split("=", 1)[1]
        for line in started.stdout.splitlines()
        if line.startswith("DOCKER_HOST=")
    )
    env["DOCKER_HOST"] = host
    d = Docker(env)
    try:
        yield d
    finally:
        for name in d.containers:
            d.run("rm", "-f", name, check=False)
        if already.returncode != 0:
            subprocess.run([str(DOCKER_SH), "stop"], capture_output=True, check=False, timeout=120)


@pytest.fixture(scope="session")
def base_image(docker: Docker) -> str:
    t0 = time.monotonic()
    docker.script(DOCKER_SH, "base-image", timeout=900)
    docker.timings["base image"] = time.monotonic() - t0
    return BASE_IMAGE


def build_image(docker: Docker, kind: str, base_image: str, timeout: int) -> None:
    """Build the `kind` image ("cpu" or "gpu") offline with scripts/build-images, as users do."""
    t0 = time.monotonic()
    built = docker.script(
        REPO / "scripts/build-images",
        f"--{kind}",
        "--offline",
        "--base-image",
        base_image,
        "--network",
        "none",
        "--tag",
        TAG,
        timeout=timeout,
    )
    docker.timings[f"{kind} image build"] = time.monotonic() - t0
    prune_stale_builds(docker, built.stdout, kind)


@pytest.fixture(scope="session")
def cpu_image(docker: Docker, base_image: str) -> str:
    """The CPU image."""
    build_image(docker, "cpu", base_image, timeout=1500)
    return f"{IMAGE}:{TAG}"


@pytest.fixture(scope="session")
def trainer_image(docker: Docker, base_image: str) -> str:
    """The trainer image: the CPU image with the mlflow extra (the retraining CronJob's)."""
    build_image(docker, "trainer", base_image, timeout=1500)
    return f"{TRAINER_IMAGE}:{TAG}"


@pytest.fixture(scope="session")
def baked_image(docker: Docker, cpu_image: str, base_image: str) -> str:
    """The same image with model-store/ baked in (reuses the cpu_image layers)."""
    docker.script(
        REPO / "scripts/build-images",
        "--cpu",
        "--offline",
        "--bake-models",
        "--base-image",
        base_image,
        "--network",
        "none",
        "--tag",
        BAKED_TAG,
        timeout=1500,
    )
    return f"{IMAGE}:{BAKED_TAG}"


@pytest.fixture(scope="session")
def gpu_image(docker: Docker, base_image: str) -> str:
    """The GPU image, on the CPU image's base."""
    build_image(docker, "gpu", base_image, timeout=3600)
    return f"{GPU_IMAGE}:{TAG}"
