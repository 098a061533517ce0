"""The compute policy: CPUs as the pod's cgroup allows, threads and runs sized to them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from predictors.metadata import ModelMetadata
from predictors.runtimes import (
    RuntimeOptions,
    available_cpus,
    cgroup_cpu_limit,
    intra_op_threads,
    parallel_runs,
    spinning,
)
from predictors.runtimes.onnx_runtime import OnnxRuntime
from tests.support import MODEL_STORE, REPO

AFFINITY = len(os.sched_getaffinity(0))


def fake_cgroup(tmp_path: Path, files: dict[str, str], own: str = "0::/\n") -> tuple[Path, Path]:
    """A cgroup file system root holding `files`, and a /proc/self/cgroup naming `own`."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    self_cgroup = tmp_path / "self-cgroup"
    self_cgroup.write_text(own)
    return root, self_cgroup


@pytest.mark.parametrize(
    "files,own,limit",
    [
        # cgroup v2: `limits.cpu: 1500m` is a quota of 150000 per 100000 us: 2 CPUs' worth.
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 2),
        ({"cpu.max": "100000 100000\n"}, "0::/\n", 1),
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        # v2 without a cgroup namespace: the process's own cgroup, or a parent, holds it.
        (
            {"kubepods/pod1/c1/cpu.max": "max 100000\n", "kubepods/pod1/cpu.max": "50000 100000"},
            "0::/kubepods/pod1/c1\n",
            1,
        ),
        # cgroup v1: cpu.cfs_quota_us and cpu.cfs_period_us under the cpu controller.
        (
            {"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"},
            "1:cpu:/\n",
            3,
        ),
        (
            {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
            "1:cpu,cpuacct:/\n",
            None,
        ),
        ({}, "0::/\n", None),  # no cgroup files at all (not Linux, or not mounted)
    ],
)
def test_cgroup_quota_is_read(
    tmp_path: Path, files: dict[str, str], own: str, limit: int | None
) -> None:
    root, self_cgroup = fake_cgroup(tmp_path, files, own)
    assert cgroup_cpu_limit(root, self_cgroup) == limit
    expected = AFFINITY if limit is None else min(AFFINITY, limit)
    assert available_cpus(root, self_cgroup) == expected


def test_a_quota_caps_the_affinity_mask(tmp_path: Path) -> None:
    """A pod limited to 1 CPU on a bigger node sizes its pools to 1, not to every core."""
    root, self_cgroup = fake_cgroup(tmp_path, {"cpu.max": "100000 100000"})
    assert available_cpus(root, self_cgroup) == 1
    # ...and a quota above the cores it may run on does not add any.
    root, self_cgroup = fake_cgroup(tmp_path / "big", {"cpu.max": "6400000 100000"})
    assert available_cpus(root, self_cgroup) == AFFINITY


def test_threads_and_runs_follow_the_cpus() -> None:
    assert intra_op_threads(0, cpus=2) == 2
    assert intra_op_threads(3, cpus=2) == 3
    assert intra_op_threads(0) == available_cpus()
    # Batching: one batch at a time, whatever was asked; else one run per CPU.
    assert parallel_runs(0, batching=True, cpus=8) == 1
    assert parallel_runs(4, batching=True, cpus=8) == 1
    assert parallel_runs(0, batching=False, cpus=8) == 8
    assert parallel_runs(3, batching=False, cpus=8) == 3
    # Spinning only while the model's threads leave a core to the protocol threads.
    assert spinning("auto", threads=2, cpus=2) == "off"
    assert spinning("auto", threads=1, cpus=2) == "on"
    assert spinning("on", threads=2, cpus=2) == "on"
    assert spinning("run", threads=2, cpus=2) == "run"
    assert spinning("off", threads=1, cpus=2) == "off"
    with pytest.raises(ValueError, match="spin"):
        spinning("sometimes", threads=1)


def test_onnx_session_gets_every_cpu_and_no_spinning() -> None:
    version = MODEL_STORE / "digits-onnx" / "1"
    meta = ModelMetadata.read(version)
    runtime = OnnxRuntime(version / meta.model_file, meta, RuntimeOptions(device="cpu"))
    options = runtime.session.get_session_options()
    assert options.intra_op_num_threads == available_cpus()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # A thread count below the CPUs leaves spinning at onnxruntime's default (on).
    if available_cpus() > 1:
        one = OnnxRuntime(
            version / meta.model_file, meta, RuntimeOptions(device="cpu", intra_op_threads=1)
        )
        spin_options = one.session.get_session_options()
        assert spin_options.intra_op_num_threads == 1
        with pytest.raises(RuntimeError, match="allow_spinning"):
            spin_options.get_session_config_entry("session.intra_op.allow_spinning")
    # "run": spin inside a run, stop when the last run returns.
    in_runs = OnnxRuntime(version / meta.model_file, meta, RuntimeOptions(device="cpu", spin="run"))
    run_options = in_runs.session.get_session_options()
    assert run_options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert run_options.get_session_config_entry("session.force_spinning_stop") == "1"
    x = np.zeros((3, 1, 8, 8), dtype=np.float32)
    assert runtime.run({"image": x})["probabilities"].shape == (3, 10)
    assert in_runs.run({"image": x})["probabilities"].shape == (3, 10)


def test_torch_gets_every_cpu_and_one_interop_thread() -> None:
    """torch's settings are process-wide and settable once: checked in a fresh process."""
    code = (
        "import torch\n"
        "from pathlib import Path\n"
        "from predictors.metadata import ModelMetadata\n"
        "from predictors.runtimes import RuntimeOptions, available_cpus, load_runtime\n"
        "v = Path(__import__('sys').argv[1]) / 'digits-torch' / '1'\n"
        "for _ in range(2):  # a second model finds the inter-op threads already set\n"
        "    load_runtime(v, ModelMetadata.read(v), RuntimeOptions(device='cpu'))\n"
        "print(torch.get_num_threads(), torch.get_num_interop_threads(), available_cpus())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(MODEL_STORE)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    threads, interop, cpus = map(int, result.stdout.split())
    assert (threads, interop) == (cpus, 1)
