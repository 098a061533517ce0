"""Running the repo's shell scripts the way a user would, for the script tests."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def _shell_files() -> list[str]:
    """Every bash file of the repo: scripts/ (by shebang or .sh) and .ci/run."""
    found = []
    for path in sorted([*SCRIPTS.rglob("*"), REPO / ".ci" / "run"]):
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            head = fh.readline()
        if path.suffix == ".sh" or head.startswith(b"#!/usr/bin/env bash"):
            found.append(str(path.relative_to(REPO)))
    return found


# The shellcheck target: every shell script, whichever part of modelplane it serves.
SHELL_FILES = _shell_files()
ENTRY_SCRIPTS = [f for f in SHELL_FILES if not f.endswith("common.sh")]
# The kind workflow's scripts, which share --help, --dry-run and their messages.
KIND_SCRIPTS = [
    "scripts/kind-up",
    "scripts/kind-down",
    "scripts/build-images",
    "scripts/load-images",
    "scripts/deploy",
    "scripts/smoke",
    "scripts/test-setup/docker.sh",
]

# What the scripts need from a bare system, and nothing of the cluster
# toolchain: with PATH limited to these, a dry run prints the same plan on every
# machine (no real kind/helm/docker found, no real state queried).
BASE_TOOLS = [
    "bash",
    "sh",
    "env",
    "dirname",
    "basename",
    "sed",
    "head",
    "tail",
    "cat",
    "grep",
    "awk",
    "tr",
    "cut",
    "seq",
    "sleep",
    "id",
    "cksum",
    "mkdir",
    "rm",
    "ls",
    "find",
]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def commands(self) -> list[list[str]]:
        """The `+ cmd ...` lines of a dry run, split as the shell would."""
        cmds = []
        for line in self.stdout.splitlines():
            if line.startswith("+ "):
                try:
                    cmds.append(shlex.split(line[2:]))
                except ValueError:
                    cmds.append(line[2:].split())
        return cmds

    def find(self, *words: str) -> list[str]:
        """The first printed command whose program and arguments contain `words` in order."""
        for cmd in self.commands():
            argv = [Path(cmd[0]).name, *cmd[1:]] if cmd else []
            pos = 0
            for arg in argv:
                if pos < len(words) and arg == words[pos]:
                    pos += 1
            if pos == len(words):
                return argv
        raise AssertionError(
            f"no command with {words} in:\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


def bare_path(tmp: Path) -> str:
    """A PATH holding only BASE_TOOLS (symlinks), in tmp."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    for name in BASE_TOOLS:
        found = shutil.which(name)
        if found and not (bindir / name).exists():
            (bindir / name).symlink_to(found)
    return str(bindir)


def run_script(
    script: str,
    *args: str,
    tmp: Path,
    env: dict[str, str] | None = None,
    bare: bool = True,
    timeout: float = 60,
) -> Result:
    full_env = {
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        # Never the user's cluster: a context that exists nowhere.
        "KUBECONFIG": str(tmp / "kubeconfig-empty"),
        "KIND_CLUSTER_NAME": "mp-test-nowhere",
        "PATH": bare_path(tmp) if bare else os.environ.get("PATH", ""),
    }
    full_env.update(env or {})
    proc = subprocess.run(
        [str(REPO / script), *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
