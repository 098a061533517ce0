"""Every script and make target a workflow calls exists and takes its flags.

The workflows only call what a developer calls (scripts/, make); a renamed
script or a dropped flag would otherwise surface as a red run on GitHub.
Scripts built on scripts/lib/common.sh are run with --dry-run and the
workflow's flags; Python scripts must list the flags in --help; other shell
scripts must match each flag in their argument parsing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.workflow_support import Call, RunBlock, calls, check_call, run_blocks

CALLS = sorted(set(calls(run_blocks())), key=str)


def test_the_workflows_call_the_walkthrough_scripts() -> None:
    called = {c.program for c in CALLS}
    expected = {
        "make",
        "scripts/kind-up",
        "scripts/build-images",
        "scripts/load-images",
        "scripts/deploy",
        "scripts/smoke",
        "scripts/fetch-kserve-crds",
        "scripts/test-setup/prometheus.sh",
        "scripts/sync-monitoring",
    }
    assert expected <= called, sorted(expected - called)


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_called_as_the_script_allows(call: Call, tmp_path: Path) -> None:
    problems = check_call(call, tmp_path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "script",
    [
        "scripts/kind-up --no-such-flag",  # dry run refuses it
        "python3 scripts/sync-monitoring --no-such-flag",  # not in --help
        "scripts/fetch-kserve-crds --no-such-flag",  # not in its argument parsing
        "scripts/no-such-script",
        "make no-such-target",
    ],
)
def test_a_wrong_call_is_caught(script: str, tmp_path: Path) -> None:
    found = calls([RunBlock("example", f'x="$({script})"\n')])
    assert len(found) == 1, found
    assert check_call(found[0], tmp_path), f"{script} passed the check"


def test_arguments_are_read_as_the_shell_reads_them() -> None:
    script = (
        'scripts/build-images --cpu \\\n  --tag "${GITHUB_SHA}" 2>&1 | tee log  # scripts/x --y\n'
        "source scripts/lib/common.sh\n"
        'echo "v=$(python3 scripts/lib/requirements.py --torch-version)" >>"$GITHUB_OUTPUT"\n'
        'version="${GITHUB_REF_NAME#v}"; make test PYTEST_ARGS=-x\n'
    )
    found = [
        (c.program, c.args, c.sourced, c.interpreted) for c in calls([RunBlock("example", script)])
    ]
    assert found == [
        ("scripts/build-images", ("--cpu", "--tag", "ci-placeholder"), False, False),
        ("scripts/lib/common.sh", (), True, False),
        ("scripts/lib/requirements.py", ("--torch-version",), False, True),
        ("make", ("test", "PYTEST_ARGS=-x"), False, False),
    ]
