"""Runtimes: the one format-specific piece of a predictor, and the compute policy they share.

Everything else (decode, validate, batch, encode, metrics) is shared in
model.py; a runtime only loads a file and turns named numpy arrays into
named numpy arrays.

The compute policy (how many CPUs, threads per run, runs at once, spinning)
lives here so that ONNX and Torch follow the same rules:

- CPUs are what the pod may use: the affinity mask, capped by the cgroup CPU
  quota (a pod with `limits.cpu: 2` on a 64-core node gets 2, not 64).
- A run may use every one of them (`intra_op_threads`): a lone request is
  then as fast as the model allows, and a batch uses all cores.
- With batching off, as many runs as CPUs may be in flight at once
  (`parallel_runs`), so concurrent requests keep every core busy.
- Idle intra-op threads do not spin when the threads cover every CPU
  (`spinning`): the protocol threads need those cores.

The measurements behind each rule are in the docstrings of these functions.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictors.formats import get_format
from predictors.metadata import ModelMetadata

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
SPIN_CHOICES = ("auto", "on", "run", "off")


@dataclass(frozen=True)
class RuntimeOptions:
    # "auto" takes a GPU when the runtime can use one, else the CPU.
    device: str = "auto"
    #: threads one run may use; 0 = every CPU this process may use (intra_op_threads)
    intra_op_threads: int = 0
    #: runs of one model in flight at once with batching off; 0 = one per CPU (parallel_runs)
    parallel_runs: int = 0
    #: idle intra-op threads spin waiting for work: auto, on, run or off (spinning)
    spin: str = "auto"
    # ONNX on CUDA only: run in half precision where the graph allows it.
    fp16: bool = False


class Runtime(ABC):
    """A loaded model that runs batches."""

    #: where it runs, e.g. "cpu" or "cuda:0"; shown in model metadata.
    device: str

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Called from worker threads, never on the event loop."""


def load_runtime(path: Path, metadata: ModelMetadata, options: RuntimeOptions) -> Runtime:
    """Load the model file of a version folder with its format's runtime."""
    runtime_class = get_format(metadata.format).load("runtime")
    runtime: Runtime = runtime_class(path / metadata.model_file, metadata, options)
    return runtime


# -- how many CPUs -------------------------------------------------------------


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int | None:
    """CPUs the cgroup CPU quota allows, rounded up; None when there is no quota.

    cgroup v2 keeps `<quota> <period>` (or `max <period>`) in cpu.max; v1 keeps
    cpu.cfs_quota_us (-1 for none) and cpu.cfs_period_us under the cpu
    controller. Each is read at the root (a container's own cgroup, with a
    cgroup namespace) and along this process's own cgroup path and its
    parents (without one); the tightest quota wins.
    """
    limits: list[int] = []
    for folder in _candidate_folders(root, self_cgroup, "", ""):
        limit = _quota(folder / "cpu.max")
        if limit is not None:
            limits.append(limit)
    for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in _candidate_folders(root, self_cgroup, controller, "cpu"):
            limit = _quota_v1(folder)
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def _candidate_folders(root: Path, self_cgroup: Path, mount: str, controller: str) -> list[Path]:
    base = root / mount if mount else root
    folders = [base]
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return folders
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        names = controllers.split(",") if controllers else [""]
        if controller not in names or not path.strip("/"):
            continue
        folder = base / path.strip("/")
        while folder != base and base in folder.parents:
            folders.append(folder)
            folder = folder.parent
    return folders


def _quota(path: Path) -> int | None:
    try:
        quota, period = path.read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _quota_v1(folder: Path) -> int | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def available_cpus(cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup CPU quota.

    Kubernetes turns `limits.cpu` into a CFS quota, not an affinity mask, so
    a pod limited to 2 CPUs still sees every core of the node in
    sched_getaffinity; sizing thread pools to that would run 64 threads on
    2 CPUs' worth of time.
    """
    try:
        affinity = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        affinity = max(1, os.cpu_count() or 1)
    limit = cgroup_cpu_limit(cgroup_root, self_cgroup)
    return min(affinity, limit) if limit is not None else affinity


# -- how to use them -----------------------------------------------------------


def intra_op_threads(requested: int, cpus: int | None = None) -> int:
    """Threads one run may use: `--threads`, or every CPU.

    Why every CPU and not all but one (the policy before): on a 2-core pod
    "all but one" is one thread, and a compute-bound model then leaves a core
    idle whenever one request or one batch runs. Measured on 2 CPUs with the
    bench's CNN (predictors/bench/compute_model.py) over gRPC, one run at a
    time: see README, "Benchmark", for the figures of the run that chose it.
    The protocol threads still get CPU time: they run between and beside the
    model's runs, and the threads do not spin (see `spinning`).
    """
    if requested > 0:
        return requested
    return cpus if cpus is not None else available_cpus()


def parallel_runs(requested: int, batching: bool, cpus: int | None = None) -> int:
    """Runs of one model at once: one batch with batching, else `--parallel_runs` or one per CPU.

    With batching, one batch at a time holds every thread and the batcher
    merges what queues meanwhile. Without, concurrent requests run side by
    side: onnxruntime and torch share one session's thread pool between the
    runs, so a second run fills the cores the first one leaves idle (between
    ops, in its serial parts) instead of waiting for it.
    """
    if batching:
        return 1
    if requested > 0:
        return requested
    return cpus if cpus is not None else available_cpus()


def spinning(spin: str, threads: int, cpus: int | None = None) -> str:
    """When idle intra-op threads spin (busy-wait) for work: "on", "run" or "off".

    Spinning saves a wake-up per op, and a lone run gains most: on 2 CPUs the
    bench's CNN ran in 1.0 ms per image in process on onnxruntime's defaults
    (2 spinning threads) against 1.7 ms with spinning off (best of five
    windows each). But a spinning thread holds its core, and in a server the
    protocol threads (decode, encode, the next request) and, in the bench,
    the load generator need the same cores. Served on 2 CPUs with the load
    generator beside it (batching on, gRPC, three interleaved rounds), the CNN
    gave a median 142 req/s at concurrency 8 with spinning off, 57 with
    spinning only during runs ("run": onnxruntime's session.force_spinning_stop
    stops it when the last concurrent run returns) and 61 with spinning always;
    at concurrency 1, p50 5.1 ms off against 8.0 and 7.9 ms. So "auto" spins
    only when the model's threads leave a core free.
    """
    if spin not in SPIN_CHOICES:
        raise ValueError(f"spin: expected one of {', '.join(SPIN_CHOICES)}, got {spin!r}")
    if spin != "auto":
        return spin
    return "on" if threads < (cpus if cpus is not None else available_cpus()) else "off"
