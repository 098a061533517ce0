"""A private Docker daemon and the CPU image, for the `image` tests.

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
TAG = "imagetest"
BAKED_TAG = "imagetest-baked"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds and runs container images with a local Docker engine"
    )


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


@pytest.fixture(scope="session")
def cpu_image(docker: Docker, base_image: str) -> str:
    """The CPU image, built as a user would with scripts/build-images, offline."""
    t0 = time.monotonic()
    docker.script(
        REPO / "scripts/build-images",
        "--cpu",
        "--offline",
        "--base-image",
        base_image,
        "--network",
        "none",
        "--tag",
        TAG,
        timeout=1500,
    )
    docker.timings["cpu image build"] = time.monotonic() - t0
    return f"{IMAGE}:{TAG}"


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
