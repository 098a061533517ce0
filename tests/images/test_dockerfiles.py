"""What a Dockerfile linter would insist on, for docker/Dockerfile and docker/Dockerfile.gpu,
plus skaffold.yaml and .dockerignore agreeing with them and with the chart.

hadolint is not packaged for Debian; these checks read the files the way
docker does (continuation lines joined, comments dropped).
"""

from __future__ import annotations

import re
import shlex
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


def pyproject_torch() -> str:
    match = re.search(r'"torch==([^"+;\s]+)', (REPO / "pyproject.toml").read_text())
    assert match
    return match.group(1)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_base_is_a_pinned_build_argument(kind: str) -> None:
    instrs = instructions(DOCKERFILES[kind])
    op, arg = instrs[0]
    assert op == "ARG" and arg.startswith("BASE_IMAGE="), "first line: ARG BASE_IMAGE=<default>"
    default = arg.split("=", 1)[1]
    name, _, tag = default.rpartition(":")
    assert name and tag and tag != "latest", f"default base {default!r} must carry a fixed tag"
    if kind == "cpu":
        assert default == "python:3.11-slim-bookworm"
    else:
        assert name == "nvidia/cuda" and "runtime-ubuntu" in tag
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
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
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
def test_no_secrets_and_torch_pinned_like_pyproject(kind: str) -> None:
    instrs = instructions(DOCKERFILES[kind])
    secret = re.compile(r"(TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY)", re.I)
    for op, arg in instrs:
        if op in ("ENV", "ARG", "LABEL"):
            assert not secret.search(arg), f"{op} {arg}: no credentials in images"
    torch_args = [arg for op, arg in instrs if op == "ARG" and arg.startswith("TORCH_VERSION=")]
    assert torch_args == [f"TORCH_VERSION={pyproject_torch()}"]
    index = [arg for op, arg in instrs if op == "ARG" and arg.startswith("TORCH_INDEX_URL=")]
    assert index and index[0].startswith("TORCH_INDEX_URL=https://download.pytorch.org/whl/")
    if kind == "cpu":
        assert index[0].endswith("/cpu"), "never a CUDA torch in the CPU image"
    # pip installs torch before the project, so the project's pin cannot pull CUDA.
    text = DOCKERFILES[kind].read_text()
    assert text.index('"torch==${TORCH_VERSION}"') < text.index("install /src")


def test_gpu_image_swaps_onnxruntime_for_the_gpu_build() -> None:
    text = DOCKERFILES["gpu"].read_text()
    assert text.index("uninstall -y onnxruntime") < text.index('install "onnxruntime-gpu==')


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
    assert copied <= allowed, f"copied but ignored: {copied - allowed}"
    assert ".work/images/wheelhouse" in allowed and "docker" in allowed
    assert not any(a.startswith(".venv") for a in allowed)


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
        assert artifact["docker"]["buildArgs"]["TORCH_VERSION"] == pyproject_torch()
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
