"""The retraining CronJob, run here: its exact steps produce a servable challenger
in a model store and canary values the chart accepts.

No cluster: each container of the rendered job pod (the init containers in
order, then the main one) is run with its own command, args and env, with what
the cluster would provide substituted: the model store claim (mounted at
/mnt/store) by a temporary store, the /tmp emptyDir by a temporary folder, and
the MLflow tracking server by a local sqlite store. Before the job, the state
the README walkthrough leaves: a champion trained and imported.

Schema, checkov and restricted Pod Security checks of the CronJob run with the
other examples (test_chart_render, test_chart_checkov, test_predictor_pods).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kserve_rules
import pytest
import yaml
from chart_support import (
    EXAMPLES_DIR,
    Manifest,
    by_kind,
    load_values,
    named,
    parse,
    render,
    restricted_violations,
    validation_errors,
)

pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

MODELPLANE = Path(sys.executable).parent / "modelplane"
TRACKING = "http://mlflow.mlflow.svc:5000"
MODEL = "mlflow-wine"


def job_pod(objects: list[Manifest]) -> dict[str, Any]:
    (cron,) = by_kind(objects, "CronJob")
    return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    values = load_values(EXAMPLES_DIR / "retraining.yaml")
    values["retraining"]["trackingUri"] = TRACKING
    values["retraining"]["epochs"] = 40
    return parse(render(values))


def test_the_job_is_hardened_like_the_predictors(objects: list[Manifest], crds_dir: Path) -> None:
    (cron,) = by_kind(objects, "CronJob")
    assert not validation_errors(cron, crds_dir)
    spec = job_pod(objects)
    assert restricted_violations(spec) == []
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsUser"] == 10001
    isvc = by_kind(objects, "InferenceService")[0]
    assert spec["securityContext"] == isvc["spec"]["predictor"]["securityContext"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["scratch"]
    claim = named(objects, "PersistentVolumeClaim", "modelplane-model-store")["metadata"]["name"]
    assert volumes["model-store"]["persistentVolumeClaim"]["claimName"] == claim
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/mnt/store"}
    steps = [c["args"][:2] for c in [*spec["initContainers"], *spec["containers"]]]
    assert steps == [
        ["train", "--family=wine"],
        ["store", "import"],
        ["canary-values", f"--model={MODEL}"],
        ["canary-values", f"--model={MODEL}"],
    ]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MODELPLANE), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def localised(container: dict[str, Any], store: Path, tracking: str) -> list[str]:
    """The container's args with the claim mount and the tracking server replaced."""
    assert container["command"] == ["modelplane"]
    args = []
    for arg in container["args"]:
        if arg.startswith("--tracking-uri="):
            assert arg == f"--tracking-uri={TRACKING}"
            arg = f"--tracking-uri={tracking}"
        args.append(arg.replace("/mnt/store", str(store)))
    return args


def container_env(container: dict[str, Any], scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    for item in container["env"]:
        env[item["name"]] = item["value"].replace("/tmp", str(scratch))
    return env


def test_the_jobs_steps_make_a_servable_challenger_and_canary_values(
    objects: list[Manifest], tmp_path: Path, crds_dir: Path
) -> None:
    if not MODELPLANE.exists():
        pytest.skip(f"{MODELPLANE} is missing: install the project (pip install -e .[mlflow])")
    store, scratch, work = tmp_path / "store", tmp_path / "scratch", tmp_path / "work"
    for folder in (store, scratch, work):
        folder.mkdir()
    tracking = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    (tmp_path / "mlflow").mkdir()
    spec = job_pod(objects)
    env = container_env(spec["containers"][0], scratch)

    # What the README walkthrough leaves: a champion, imported and served.
    for args in (
        ["train", "--family", "wine", "--alias", "champion", "--epochs", "40"],
        ["store", "import", f"models:/{MODEL}@champion", "--store", str(store)],
    ):
        done = run([*args, "--tracking-uri", tracking], env, work)
        assert done.returncode == 0, done.stderr

    outputs = []
    for container in [*spec["initContainers"], *spec["containers"]]:
        done = run(localised(container, store, tracking), container_env(container, scratch), work)
        assert done.returncode == 0, f"{container['name']}: {done.stderr}"
        outputs.append(done.stdout)

    # A new, servable version of each format, next to the champion's.
    for name in (f"{MODEL}-onnx", f"{MODEL}-torch"):
        assert sorted(p.name for p in (store / name).iterdir()) == ["1", "2"]
    verified = run(["store", "verify", "--store", str(store)], env, work)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # The values file the job wrote beside the store, and printed last.
    written = (store / f"{MODEL}-canary.yaml").read_text()
    assert outputs[-1] == written
    values = yaml.safe_load(written)
    (entry,) = values["models"]
    assert entry["name"] == f"{MODEL}-onnx"
    assert entry["storageUri"] == f"pvc://modelplane-model-store/{MODEL}-onnx/2"
    assert entry["canaryTrafficPercent"] == 10

    # They render through the chart, next to the example they came from.
    base = load_values(EXAMPLES_DIR / "retraining.yaml")
    canary = parse(render({**base, **values}))
    (isvc,) = by_kind(canary, "InferenceService")
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["spec"]["predictor"]["model"]["storageUri"].endswith(f"/{MODEL}-onnx/2")
    assert kserve_rules.webhook_errors(isvc) == []
    assert not [e for o in canary for e in validation_errors(o, crds_dir)]
