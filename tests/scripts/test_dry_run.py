"""Each script's dry run prints the commands a real run would execute.

The scripts run for real here, with PATH cut down to a bare system (no kind,
helm or docker), so the plan is the same on every machine and nothing can
touch a cluster or an image.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.scripts.script_support import KIND_SCRIPTS, REPO, run_script

PY = {"PYTHON": sys.executable}


def pinned_torch() -> str:
    match = re.search(r'"torch==([^"+;\s]+)', (REPO / "pyproject.toml").read_text())
    assert match, "pyproject.toml pins torch"
    return match.group(1)


def chart_app_version() -> str:
    match = re.search(
        r'^appVersion:\s*"?([^"\s]+)"?', (REPO / "charts/modelplane/Chart.yaml").read_text(), re.M
    )
    assert match
    return match.group(1)


@pytest.mark.parametrize("script", KIND_SCRIPTS)
def test_help_and_unknown_flag(script: str, tmp_path: Path) -> None:
    helped = run_script(script, "--help", tmp=tmp_path, env=PY)
    assert helped.returncode == 0, helped.stderr
    assert "Usage:" in helped.stdout or "usage" in helped.stdout.lower()
    bad = run_script(script, "--no-such-flag", tmp=tmp_path, env=PY)
    assert bad.returncode != 0
    assert "unknown argument: --no-such-flag" in bad.stderr


def test_kind_up_plan_standard_mode(tmp_path: Path) -> None:
    res = run_script("scripts/kind-up", "--dry-run", tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    # A missing tool is named even in a dry run, with where to get it.
    assert "'kind' is not installed" in res.stderr and "'helm' is not installed" in res.stderr
    create = res.find("kind", "create", "cluster")
    assert create[create.index("--name") + 1] == "mp-test-nowhere"
    assert create[create.index("--config") + 1] == str(REPO / "kind/cluster.yaml")
    cm = res.find("helm", "upgrade", "--install", "cert-manager")
    assert cm[cm.index("--version") + 1] == "v1.17.0"
    crd = res.find(
        "helm", "upgrade", "--install", "kserve-crd", "oci://ghcr.io/kserve/charts/kserve-crd"
    )
    assert crd[crd.index("--version") + 1] == "v0.20.0"
    kserve = res.find(
        "helm", "upgrade", "--install", "kserve", "oci://ghcr.io/kserve/charts/kserve-resources"
    )
    assert kserve[kserve.index("--version") + 1] == "v0.20.0"
    assert "kserve.controller.deploymentMode=Standard" in kserve
    assert "kserve.controller.gateway.disableIngressCreation=true" in kserve
    # KServe's own runtimes (kserve-torchserve for the torchserve example): the
    # kserve-runtime-configs chart installs none unless told to.
    runtimes = res.find(
        "helm",
        "upgrade",
        "--install",
        "kserve-runtime-configs",
        "oci://ghcr.io/kserve/charts/kserve-runtime-configs",
    )
    assert runtimes[runtimes.index("--version") + 1] == "v0.20.0"
    assert runtimes[runtimes.index("--namespace") + 1] == "kserve"
    assert "kserve.servingruntime.enabled=true" in runtimes
    prom = res.find("helm", "upgrade", "--install", "prometheus", "kube-prometheus-stack")
    assert prom[prom.index("--version") + 1] == "83.4.0"
    assert "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false" in prom
    # Every helm/kubectl command targets the kind cluster's context, never the current one.
    for cmd in res.commands():
        if Path(cmd[0]).name == "helm":
            assert cmd[1:3] == ["--kube-context", "kind-mp-test-nowhere"], cmd
    # Order: cluster, cert-manager (KServe's webhooks need it), KServe.
    order = [" ".join(c) for c in res.commands()]
    idx = [
        next(i for i, c in enumerate(order) if key in c)
        for key in (
            "create cluster",
            "cert-manager",
            "kserve-crd",
            "kserve-resources",
            "kserve-runtime-configs",
        )
    ]
    assert idx == sorted(idx)
    assert "knative" not in res.stdout.lower() and "keda" not in res.stdout


def test_kind_up_optional_knative_keda_and_env_dry_run(tmp_path: Path) -> None:
    res = run_script(
        "scripts/kind-up",
        "--knative",
        "--keda",
        "--no-monitoring",
        tmp=tmp_path,
        env={"DRY_RUN": "1"},
    )
    assert res.returncode == 0, res.stderr
    op = res.find("helm", "upgrade", "--install", "knative-operator")
    assert any("knative-v1.21.1/knative-operator-v1.21.1.tgz" in a for a in op)
    res.find("kubectl", "apply", "-f", str(REPO / "kind/knative-serving.yaml"))
    kserve = res.find(
        "helm", "upgrade", "--install", "kserve", "oci://ghcr.io/kserve/charts/kserve-resources"
    )
    assert "kserve.controller.deploymentMode=Knative" in kserve
    assert "kserve.controller.gateway.disableIngressCreation=true" not in kserve
    # Kourier, not Istio: no top-level Istio VirtualService (KServe's Kourier guide).
    assert "kserve.controller.gateway.disableIstioVirtualHost=true" in kserve
    keda = res.find("helm", "upgrade", "--install", "keda")
    assert keda[keda.index("--version") + 1] == "2.18.0"
    assert "kube-prometheus-stack" not in res.stdout
    assert "knative-serving.yaml" in (REPO / "kind/knative-serving.yaml").name
    assert 'version: "1.21.1"' in (REPO / "kind/knative-serving.yaml").read_text()


def test_kind_up_can_leave_kserves_runtimes_out(tmp_path: Path) -> None:
    res = run_script("scripts/kind-up", "--dry-run", "--no-kserve-runtimes", tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "kserve-runtime-configs" not in res.stdout
    kserve = res.find("helm", "upgrade", "--install", "kserve")
    assert "kserve.controller.gateway.disableIstioVirtualHost=true" not in kserve


def test_real_run_without_prerequisites_fails_naming_them(tmp_path: Path) -> None:
    res = run_script("scripts/kind-up", tmp=tmp_path)
    assert res.returncode != 0
    for tool in ("docker", "kind", "helm"):
        assert f"missing prerequisite: {tool}" in res.stderr, res.stderr
    assert not res.commands(), "nothing may run before the prerequisites are there"
    res = run_script("scripts/load-images", tmp=tmp_path)
    assert res.returncode != 0 and "missing prerequisite: kind" in res.stderr


def test_kind_down_plan(tmp_path: Path) -> None:
    res = run_script("scripts/kind-down", "--dry-run", "--name", "other", tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.find("kind", "delete", "cluster", "--name", "other")
    assert len(res.commands()) == 1


def test_build_images_offline_plan(tmp_path: Path) -> None:
    res = run_script(
        "scripts/build-images",
        "--dry-run",
        "--offline",
        "--bake-models",
        "--base-image",
        "localhost/base:1",
        "--network",
        "none",
        tmp=tmp_path,
        env=PY,
    )
    assert res.returncode == 0, res.stderr
    wheel = res.find("-m", "pip", "wheel", "--wheel-dir")
    wheelhouse = wheel[wheel.index("--wheel-dir") + 1]
    assert wheelhouse == str(REPO / ".work/images/wheelhouse")
    build = res.find("docker", "build", "-f", str(REPO / "docker/Dockerfile"))
    assert build[build.index("-t") + 1] == f"modelplane/predictor:{chart_app_version()}"
    args = {build[i + 1] for i, a in enumerate(build) if a == "--build-arg"}
    # No TORCH_VERSION: the Dockerfiles read pyproject.toml's pin themselves.
    assert not any(a.startswith("TORCH_VERSION=") for a in args)
    assert {
        "PIP_OFFLINE=1",
        "WHEELHOUSE=.work/images/wheelhouse",
        "BASE_IMAGE=localhost/base:1",
        "BAKE_MODELS=1",
    } <= args
    assert build[build.index("--network") + 1] == "none"
    assert build[-1] == str(REPO), "the build context is the repository root"
    assert "Dockerfile.gpu" not in res.stdout


def test_build_images_gpu_plan_and_offline_refusal(tmp_path: Path) -> None:
    res = run_script(
        "scripts/build-images", "--dry-run", "--all", "--tag", "t1", tmp=tmp_path, env=PY
    )
    assert res.returncode == 0, res.stderr
    res.find(
        "docker", "build", "-f", str(REPO / "docker/Dockerfile"), "-t", "modelplane/predictor:t1"
    )
    gpu = res.find(
        "docker",
        "build",
        "-f",
        str(REPO / "docker/Dockerfile.gpu"),
        "-t",
        "modelplane/predictor-gpu:t1",
    )
    assert not any(a.startswith("TORCH_VERSION=") for a in gpu)
    assert "pip" not in res.stdout, "no wheelhouse without --offline"
    offline = run_script(
        "scripts/build-images", "--dry-run", "--gpu", "--offline", tmp=tmp_path, env=PY
    )
    assert offline.returncode == 0, offline.stderr
    # The GPU wheels come from PyPI's CUDA builds, under the CUDA stack's pins...
    wheel = offline.find("-m", "pip", "wheel")
    assert wheel[wheel.index("-c") + 1] == str(REPO / "docker/gpu-constraints.txt")
    assert ".work/images/wheelhouse-gpu" in " ".join(wheel)
    # ...and the build gets exactly what the Dockerfile copies, not the whole tree.
    assert "docker build -f docker/Dockerfile.gpu" in offline.stdout
    assert "WHEELHOUSE=.work/images/wheelhouse-gpu" in offline.stdout


def test_build_images_trainer_plan(tmp_path: Path) -> None:
    """The trainer: the CPU Dockerfile with the mlflow extra, its wheels in the CPU
    wheelhouse, labelled apart (tests/images prunes each kind's stale builds)."""
    res = run_script(
        "scripts/build-images", "--dry-run", "--trainer", "--offline", "--tag", "t1",
        tmp=tmp_path, env=PY,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    build = res.find(
        "docker", "build", "-f", str(REPO / "docker/Dockerfile"), "-t", "modelplane/trainer:t1"
    )
    for arg in ("EXTRAS=mlflow", "IMAGE_KIND=trainer", "PIP_OFFLINE=1"):
        assert build[build.index(arg) - 1] == "--build-arg", arg
    assert "modelplane/predictor" not in res.stdout
    every = run_script("scripts/build-images", "--dry-run", "--all", tmp=tmp_path, env=PY)
    assert every.stdout.count("docker build") == 3, "--all: CPU, GPU and trainer"
    wheels = res.find("-m", "pip", "wheel")
    assert ".work/images/wheelhouse" in " ".join(wheels)
    assert "requirements.py --extras mlflow" in res.stdout


def test_wheelhouse_requirements_with_an_extra() -> None:
    import subprocess

    def requirements(*args: str) -> subprocess.CompletedProcess[str]:
        script = str(REPO / "scripts/lib/requirements.py")
        return subprocess.run(
            [sys.executable, script, *args], capture_output=True, text=True, check=False
        )

    out = requirements("--extras", "mlflow").stdout.splitlines()
    assert f"torch=={pinned_torch()}+cpu" in out
    assert any(r.startswith("mlflow-skinny") for r in out)
    refused = requirements("--extras", "nope")
    assert refused.returncode != 0 and "no extra 'nope'" in refused.stderr


def test_wheelhouse_requirements_pin_the_cpu_torch() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, str(REPO / "scripts/lib/requirements.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert f"torch=={pinned_torch()}+cpu" in out
    assert not any(r.startswith("torch==") and not r.endswith("+cpu") for r in out)
    assert any(r.startswith("setuptools") for r in out), "build backend for the offline build"


def test_load_images_plan(tmp_path: Path) -> None:
    res = run_script("scripts/load-images", "-n", "--all", "--tag", "t2", tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    res.find("kind", "load", "docker-image", "modelplane/predictor:t2", "--name", "mp-test-nowhere")
    res.find("kind", "load", "docker-image", "modelplane/predictor-gpu:t2")
    res.find("kind", "load", "docker-image", "modelplane/trainer:t2")


def test_deploy_plan_loads_the_store_then_installs_and_waits(tmp_path: Path) -> None:
    res = run_script("scripts/deploy", "--dry-run", "--tag", "t3", tmp=tmp_path, env=PY)
    assert res.returncode == 0, res.stderr
    assert (
        "kind: PersistentVolumeClaim" in res.stdout and "name: modelplane-model-store" in res.stdout
    )
    cp = res.find(
        "kubectl", "cp", str(REPO / "model-store") + "/.", "modelplane-store-loader:/store/"
    )
    assert cp
    helm = res.find("helm", "upgrade", "--install", "modelplane", str(REPO / "charts/modelplane"))
    assert helm[helm.index("-f") + 1] == str(
        REPO / "charts/modelplane/examples/pvc-model-store.yaml"
    )
    for setting in (
        "image.cpu.repository=modelplane/predictor",
        "image.cpu.tag=t3",
        "modelStore.pvc.create=false",
    ):
        assert setting in helm
    assert helm[helm.index("--namespace") + 1] == "modelplane"
    # The loader runs as the predictors do (UID/GID 10001, hardened).
    loader = res.stdout[res.stdout.index("name: modelplane-store-loader") :]
    assert "runAsUser: 10001" in loader and "fsGroup: 10001" in loader
    assert "allowPrivilegeEscalation: false" in loader and "drop: [ALL]" in loader
    wait = res.find("kubectl", "wait", "--for=condition=Ready", "inferenceservice", "--all")
    assert wait
    text = res.stdout
    assert text.index("kubectl") < text.index("cp ") < text.index("upgrade --install")


def test_deploy_other_example_skips_the_store(tmp_path: Path) -> None:
    res = run_script(
        "scripts/deploy", "--dry-run", "--example", "cpu", "--no-wait", tmp=tmp_path, env=PY
    )
    assert res.returncode == 0, res.stderr
    helm = res.find("helm", "upgrade", "--install")
    assert helm[helm.index("-f") + 1] == str(REPO / "charts/modelplane/examples/cpu.yaml")
    assert "store-loader" not in res.stdout and "inferenceservice" not in res.stdout
    missing = run_script("scripts/deploy", "--dry-run", "--example", "nope", tmp=tmp_path, env=PY)
    assert missing.returncode != 0 and "pvc-model-store.yaml" in missing.stderr


def test_smoke_plan_port_forwards_both_ports(tmp_path: Path) -> None:
    """Standard mode through the predictor Service: KServe maps its port 80 to
    HTTP and keeps gRPC on 8081 (v0.20.0 service_reconciler.go createDefaultSvc)."""
    res = run_script("scripts/smoke", "--dry-run", "--model", "wine-onnx", tmp=tmp_path, env=PY)
    assert res.returncode == 0, res.stderr
    pf = res.find("kubectl", "port-forward")
    assert "service/wine-onnx-predictor" in pf
    assert "18080:80" in pf and "18081:8081" in pf and "127.0.0.1" in pf
    smoke = res.find(
        str(REPO / "scripts/lib/v2_smoke.py"),
        "--http",
        "127.0.0.1:18080",
        "--grpc",
        "127.0.0.1:18081",
        "--model",
        "wine-onnx",
    )
    assert "python" in smoke[0]


def test_smoke_plan_through_a_pod(tmp_path: Path) -> None:
    res = run_script(
        "scripts/smoke", "-n", "--model", "wine-onnx", "--via", "pod", tmp=tmp_path, env=PY
    )
    assert res.returncode == 0, res.stderr
    pf = res.find("kubectl", "port-forward")
    assert "pod/wine-onnx-predictor-POD" in pf and "18080:8080" in pf and "18081:8081" in pf
    bad = run_script("scripts/smoke", "-n", "--via", "ingress", tmp=tmp_path, env=PY)
    assert bad.returncode != 0 and "choose auto, service or pod" in bad.stderr


def test_smoke_fails_loudly_when_nothing_answers(tmp_path: Path) -> None:
    import socket

    # A port that was free a moment ago: nothing listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_script(
        "scripts/smoke",
        "--http",
        f"127.0.0.1:{port}",
        "--grpc",
        f"127.0.0.1:{port}",
        "--timeout",
        "2",
        tmp=tmp_path,
        env=PY,
    )
    assert res.returncode != 0
    assert "FAIL:" in res.stderr and "not ready" in res.stderr


def test_docker_setup_plan_uses_private_dirs(tmp_path: Path) -> None:
    res = run_script(
        "scripts/test-setup/docker.sh",
        "--dry-run",
        "start",
        tmp=tmp_path,
        env={"MODELPLANE_DOCKERD_DIR": str(tmp_path / "d")},
    )
    assert res.returncode == 0, res.stderr
    cmd = res.find("dockerd", "--data-root")
    assert cmd[cmd.index("--data-root") + 1] == str(tmp_path / "d/data")
    assert cmd[cmd.index("--host") + 1] == f"unix://{tmp_path}/d/docker.sock"
    assert cmd[cmd.index("--pidfile") + 1] == str(tmp_path / "d/dockerd.pid")
    assert "--iptables=false" in cmd and cmd[cmd.index("--bridge") + 1] == "none"
    assert not (tmp_path / "d").exists(), "a dry run creates nothing"
