"""Every shell script passes shellcheck, and the entry points are strict bash."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.scripts.script_support import ENTRY_SCRIPTS, REPO, SHELL_FILES

SHELLCHECK = shutil.which("shellcheck")


@pytest.mark.skipif(
    SHELLCHECK is None,
    reason="shellcheck not installed (apt-get install shellcheck, or scripts/test-setup/docker.sh)",
)
@pytest.mark.parametrize("path", SHELL_FILES)
def test_shellcheck_passes(path: str) -> None:
    # -x follows `source` into scripts/lib/common.sh; severity style: the
    # strictest level, so even style findings fail.
    result = subprocess.run(
        [SHELLCHECK, "-x", "--severity=style", "--shell=bash", path],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", ENTRY_SCRIPTS)
def test_script_is_strict_and_executable(path: str) -> None:
    text = (REPO / path).read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), "scripts run with bash from PATH"
    assert "\nset -euo pipefail\n" in text
    assert os.access(REPO / path, os.X_OK), f"{path} is not executable"
