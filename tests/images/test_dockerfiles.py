"""What a Dockerfile linter would insist on, for docker/Dockerfile and docker/Dockerfile.gpu,
plus skaffold.yaml and .dockerignore agreeing with them and with the chart, and the
torch pin written once (pyproject.toml) and read by one reader (scripts/lib/requirements.py).

hadolint is not packaged for Debian; these checks read the files the way
docker does (continuation lines joined, comments dropped).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {"cpu": REPO / "docker/Dockerfile", "gpu": REPO / "docker/Dockerfile.gpu"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path} ends inside a continuation"
    return out


def final_stage(instrs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (op, _) in enumerate(instrs) if op == "FROM")
    return instrs[last_from:]


REQUIREMENTS = REPO / "scripts/lib/requirements.py"
UID = "10001"


def pyproject_torch() -> str:
    """The pin as it is written, read here without the project's reader."""
    pins = re.findall(r'"torch==([^"+;\s]+)', (REPO / "pyproject.toml").read_text())
    assert len(pins) == 1, f"pyproject.toml pins torch once, not {pins}"
    return pins[0]


def requirements(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REQUIREMENTS), *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_base_is_a_pinned_build_argument(kind: str) -> None:
    instrs = instructions(DOCKERFILES[kind])
    op, arg = instrs[0]
    assert op == "ARG" and arg.startswith("BASE_IMAGE="), "first line: ARG BASE_IMAGE=<default>"
    default = arg.split("=", 1)[1]
    name, _, tag = default.rpartition(":")
    assert name and tag and tag != "latest", f"default base {default!r} must carry a fixed tag"
    # One base for both: the GPU image's CUDA comes from wheels, not a CUDA image.
    assert default == "python:3.11-slim-bookworm"
    stages: list[str] = []
    for op, args in instrs:
        if op == "FROM":
            parts = args.split()
            assert parts[0] == "${BASE_IMAGE}" or parts[0] in stages, (
                f"FROM {parts[0]}: every stage starts from BASE_IMAGE or an earlier stage"
            )
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.append(parts[2])
    assert len(stages) >= 3, "multi-stage: builder, models, runtime"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_runtime_stage_is_non_root_and_serves_on_the_contract_ports(kind: str) -> None:
    final = final_stage(instructions(DOCKERFILES[kind]))
    users = [arg for op, arg in final if op == "USER"]
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    # The chart's runAsUser/runAsGroup/fsGroup; >= 10000 for checkov CKV_K8S_40.
    assert (uid, gid) == (UID, UID)
    chowns = [a for op, a in final if op == "COPY" and "--chown=" in a]
    assert chowns and all(f"--chown={UID}:{UID}" in a for a in chowns)
    text = DOCKERFILES[kind].read_text()
    assert f"--uid {UID} --gid {UID}" in text and f"--gid {UID} modelplane" in text
    last_user = max(i for i, (op, _) in enumerate(final) if op == "USER")
    assert not any(op == "RUN" for op, _ in final[last_user:]), "nothing runs as root after USER"
    exposed = {p for op, arg in final if op == "EXPOSE" for p in arg.split()}
    assert exposed == {"8080", "8081"}
    assert any(op == "HEALTHCHECK" and "/v2/health/live" in arg for op, arg in final)
    entry = [arg for op, arg in final if op == "ENTRYPOINT"]
    cmd = [arg for op, arg in final if op == "CMD"]
    assert entry and shlex.split(entry[-1].strip("[]").replace(",", " ")) == ["modelplane", "serve"]
    assert cmd and "--model_dir" in cmd[-1] and "/mnt/models" in cmd[-1]


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_no_secrets_and_the_torch_version_read_from_pyproject(kind: str) -> None:
    instrs = instructions(DOCKERFILES[kind])
    secret = re.compile(r"(TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY)", re.I)
    for op, arg in instrs:
        if op in ("ENV", "ARG", "LABEL"):
            assert not secret.search(arg), f"{op} {arg}: no credentials in images"
    # No version of its own to go stale: the build runs the one reader.
    assert not [a for op, a in instrs if op == "ARG" and a.startswith("TORCH_VERSION")]
    text = DOCKERFILES[kind].read_text()
    assert pyproject_torch() not in text
    assert any(
        op == "COPY" and "scripts/lib/requirements.py" in a and "--from" not in a
        for op, a in instrs
    )
    runs = " ".join(a for op, a in instrs if op == "RUN")
    assert "/build/requirements.py --pyproject pyproject.toml" in runs
    index = [arg for op, arg in instrs if op == "ARG" and arg.startswith("TORCH_INDEX_URL=")]
    if kind == "cpu":
        assert index == ["TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"], (
            "never a CUDA torch in the CPU image"
        )
        assert "--torch-version" in runs
        # Online, torch comes from the CPU index before anything else can ask
        # PyPI for it (offline, the wheelhouse holds only the CPU build).
        assert runs.index('"torch==${torch_version}"') < runs.rindex("-r /build/requirements.txt")
    else:
        assert not index, "PyPI's own torch is the CUDA build"
        assert "--gpu" in runs and "-c /build/gpu-constraints.txt" in runs
    # The project goes in after its dependencies, in a later layer: editing
    # predictors/ does not reinstall torch.
    copy_src = next(i for i, (op, a) in enumerate(instrs) if op == "COPY" and "predictors" in a)
    copy_readme = next(i for i, (op, a) in enumerate(instrs) if op == "COPY" and "README" in a)
    deps = next(i for i, (op, a) in enumerate(instrs) if op == "RUN" and "requirements.txt" in a)
    assert deps < copy_src and deps < copy_readme, "README edits must not reinstall torch"


def test_requirements_reader_is_the_one_place_for_the_pin(tmp_path: Path) -> None:
    res = requirements("--torch-version")
    assert res.returncode == 0 and res.stdout.strip() == pyproject_torch()
    cpu = requirements().stdout.splitlines()
    assert f"torch=={pyproject_torch()}+cpu" in cpu and "onnxruntime>=1.20,<2" in cpu
    gpu = requirements("--gpu").stdout.splitlines()
    # `===`: exactly the PyPI build; a local X+cpu wheel cannot match it.
    assert f"torch==={pyproject_torch()}" in gpu
    assert not [r for r in gpu if r.startswith("onnxruntime") and "gpu" not in r]
    assert [r for r in gpu if r.startswith("onnxruntime-gpu")]
    assert [r for r in gpu if r.startswith("setuptools")], "the offline build needs a backend"

    # It follows whatever pyproject.toml says, and refuses what it cannot read.
    text = (REPO / "pyproject.toml").read_text()
    moved = tmp_path / "pyproject.toml"
    moved.write_text(text.replace(f'"torch=={pyproject_torch()}"', '"torch==9.8.7"'))
    assert requirements("--pyproject", str(moved), "--torch-version").stdout.strip() == "9.8.7"
    assert "torch===9.8.7" in requirements("--pyproject", str(moved), "--gpu").stdout
    for broken in ('"torch>=2"', '"torch==9.8.7", "torch==9.8.8"'):
        moved.write_text(text.replace(f'"torch=={pyproject_torch()}"', broken))
        res = requirements("--pyproject", str(moved), "--torch-version")
        assert res.returncode != 0 and "pin torch exactly once" in res.stderr


@pytest.mark.parametrize(
    "consumer", ["scripts/setup-dev", "scripts/build-images", "skaffold.yaml", ".dockerignore"]
)
def test_every_consumer_gets_the_torch_pin_from_the_reader(consumer: str) -> None:
    text = (REPO / consumer).read_text()
    assert pyproject_torch() not in text, f"{consumer} writes the torch version itself"
    assert "TORCH_VERSION=" not in text.replace('TORCH_VERSION="$(', "")
    if consumer.startswith("scripts/"):
        # No second parser of pyproject.toml (sed, grep, tomllib of its own).
        assert "scripts/lib/requirements.py" in text and " --torch-version)" in text
        assert not re.search(r"(sed|grep|awk)[^\n]*pyproject", text)
    if consumer == "skaffold.yaml":
        assert "TORCH_VERSION" not in text, "the Dockerfiles read the pin themselves"


def test_gpu_constraints_pin_one_cuda_stack_exactly() -> None:
    lines = [
        line.split("#")[0].strip()
        for line in (REPO / "docker/gpu-constraints.txt").read_text().splitlines()
    ]
    pins = dict(line.split("==", 1) for line in lines if line)
    assert all(re.fullmatch(r"[0-9][0-9.]*", v) for v in pins.values()), pins
    assert "torch" not in pins, "torch's pin is pyproject.toml's"
    assert "onnxruntime-gpu" in pins and "nvidia-cudnn-cu13" in pins
    # One CUDA major for everything: no cu12 wheel next to the cu13 ones.
    assert not [n for n in pins if n.endswith("-cu12")]


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "ignore everything, then let in what the Dockerfiles copy"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for path in DOCKERFILES.values():
        for op, arg in instructions(path):
            if op == "COPY" and "--from=" not in arg:
                srcs = arg.split()[:-1]
                copied.update(s.rstrip("/") for s in srcs if not s.startswith("--"))
    copied = {re.sub(r"\[(.)\]", r"\1", c) for c in copied}  # README.m[d] -> README.md
    copied.discard("${WHEELHOUSE}")
    ignored = {c for c in copied if not any(c == a or c.startswith(f"{a}/") for a in allowed)}
    assert not ignored, f"copied but ignored: {ignored}"
    assert ".work/images/wheelhouse" in allowed and "docker" in allowed
    assert not any(a.startswith(".venv") for a in allowed)
    # The 3 GB GPU wheelhouse stays out of every context but its own tar.
    assert not any(a.startswith(".work/images/wheelhouse-gpu") for a in allowed)


def test_skaffold_builds_both_images_and_deploys_the_chart() -> None:
    cfg = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    values = yaml.safe_load((REPO / "charts/modelplane/values.yaml").read_text())
    assert cfg["apiVersion"].startswith("skaffold/v4")
    profiles = {p["name"]: p for p in cfg["profiles"]}
    assert {"cpu", "gpu"} <= set(profiles)
    expected = {
        "cpu": (values["image"]["cpu"]["repository"], "docker/Dockerfile"),
        "gpu": (values["image"]["gpu"]["repository"], "docker/Dockerfile.gpu"),
    }
    for name, (image, dockerfile) in expected.items():
        (artifact,) = profiles[name]["build"]["artifacts"]
        assert artifact["image"] == image
        assert artifact["docker"]["dockerfile"] == dockerfile
        assert (REPO / dockerfile).is_file()
        # The Dockerfiles read the torch pin from pyproject.toml themselves.
        assert "TORCH_VERSION" not in (artifact["docker"].get("buildArgs") or {})
        assert profiles[name]["build"]["local"]["push"] is False, "kind: load, never push"
        (release,) = profiles[name]["deploy"]["helm"]["releases"]
        assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
        for values_file in release["valuesFiles"]:
            assert (REPO / values_file).is_file()
        # The templated keys exist in the chart (a renamed key would be ignored).
        for key in release["setValueTemplates"]:
            node = values
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{key} not in values.yaml"
                node = node[part]
        assert any(
            "scripts/deploy --store-only" in " ".join(h["host"]["command"])
            for h in profiles[name]["deploy"]["helm"]["hooks"]["before"]
        )
        ports = {(f["port"], f["localPort"]) for f in profiles[name]["portForward"]}
        assert ports == {(8080, 8080), (8081, 8081)}
    # The top-level pipeline is the cpu profile.
    assert cfg["build"] == profiles["cpu"]["build"]
    assert cfg["deploy"] == profiles["cpu"]["deploy"]
