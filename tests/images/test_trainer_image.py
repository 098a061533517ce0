"""The trainer image runs the chart's retraining job: each rendered step, in the image,
hardened as the pod is, makes a servable challenger and its canary values.

The cluster's parts are stood in for as in tests/charts/test_retraining.py (which
runs the same steps with this machine's modelplane): the model store claim by
a host folder at /mnt/store, the MLflow tracking server by a sqlite store in a
second mounted folder. No network: the image carries all it needs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.chart_support import EXAMPLES_DIR, load_values, parse, render
from tests.images.conftest import TAG, TRAINER_IMAGE, UID, Docker

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

TRACKING = "http://mlflow.mlflow.svc:5000"
IN_IMAGE_TRACKING = "sqlite:////mnt/mlflow/mlflow.db"
MODEL = "mlflow-wine"


def job_steps() -> list[dict[str, Any]]:
    values = load_values(EXAMPLES_DIR / "retraining.yaml")
    values["retraining"].update(trackingUri=TRACKING, epochs=40)
    (cron,) = [o for o in parse(render(values)) if o["kind"] == "CronJob"]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return [*pod["initContainers"], *pod["containers"]]


def run_step(
    docker: Docker, image: str, args: list[str], env: dict[str, str], mounts: list[str]
) -> subprocess.CompletedProcess[str]:
    """One step as the pod runs it: read-only root, /tmp scratch, the pod's user."""
    opts = ["--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--user",
            f"{UID}:{UID}", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]  # fmt: skip
    for key, value in env.items():
        opts += ["-e", f"{key}={value}"]
    for mount in mounts:
        opts += ["-v", mount]
    return docker.run("run", *opts, "--entrypoint", "modelplane", image, *args, check=False)


def test_the_trainer_image_runs_the_retraining_job(
    docker: Docker, trainer_image: str, tmp_path: Path
) -> None:
    store, mlflow = tmp_path / "store", tmp_path / "mlflow"
    for folder in (store, mlflow):
        folder.mkdir()
        folder.chmod(0o777)  # the pod's user, 10001, writes there
    mounts = [f"{store}:/mnt/store", f"{mlflow}:/mnt/mlflow"]
    steps = job_steps()
    # The chart's default image, at the chart's appVersion: the one built here under TAG.
    assert {s["image"].rsplit(":", 1)[0] for s in steps} == {TRAINER_IMAGE}
    env = {e["name"]: e["value"] for e in steps[0]["env"]}

    # What the README walkthrough leaves before the first run: a champion.
    for args in (
        ["train", "--family", "wine", "--alias", "champion", "--epochs", "40"],
        ["store", "import", f"models:/{MODEL}@champion", "--store", "/mnt/store"],
    ):
        done = run_step(docker, trainer_image, [*args, f"--tracking-uri={IN_IMAGE_TRACKING}"],
                        env, mounts)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    outputs = []
    for step in steps:
        assert step["command"] == ["modelplane"]
        args = [
            f"--tracking-uri={IN_IMAGE_TRACKING}" if a == f"--tracking-uri={TRACKING}" else a
            for a in step["args"]
        ]
        step_env = {e["name"]: e["value"] for e in step["env"]}
        done = run_step(docker, trainer_image, args, step_env, mounts)
        assert done.returncode == 0, f"{step['name']}: {done.stdout}{done.stderr}"
        outputs.append(done.stdout)

    # A second, servable version, checked by this machine's modelplane.
    assert sorted(p.name for p in (store / f"{MODEL}-onnx").iterdir()) == ["1", "2"]
    verified = subprocess.run(
        [str(Path(sys.executable).parent / "modelplane"), "store", "verify", "--store", str(store)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    (entry,) = yaml.safe_load(outputs[-1])["models"]
    assert entry["storageUri"] == f"pvc://modelplane-model-store/{MODEL}-onnx/2"
    print(f"\n{trainer_image} (tag {TAG}): {len(steps)} steps, {docker.timings}")
