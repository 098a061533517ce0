"""The rules every workflow here keeps, so a fork can run them as they are.

Actions are pinned to full commit SHAs (a tag can be moved to other code), the
token gets only what a job needs, `run:` scripts never expand `${{ }}` (a value
from an event would become shell code), and every job has a time limit.
"""

from __future__ import annotations

import re
from collections import defaultdict

from tests.workflows.workflow_support import (
    REPO,
    load,
    parsed_uses_count,
    rel,
    run_blocks,
    triggers,
    uses_refs,
    workflow_files,
)

PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^v\d+\.\d+\.\d+$")


def test_there_are_workflows() -> None:
    names = {path.name for path in workflow_files()}
    assert {"ci.yml", "images.yml", "chart.yml", "e2e.yml"} <= names, names


def test_every_action_is_pinned_to_a_commit_sha_with_its_version() -> None:
    refs = uses_refs()
    # The line scan must see every `uses:` the YAML holds, or it proves nothing.
    assert len(refs) == parsed_uses_count() > 0
    bad = [
        f"{u.where}: {u.ref} # {u.comment}"
        for u in refs
        if not u.ref.startswith("./")
        and not (PINNED.match(u.ref) and VERSION_COMMENT.match(u.comment))
    ]
    assert not bad, "not pinned as owner/repo@<40-hex SHA> # vX.Y.Z:\n" + "\n".join(bad)


def test_each_action_has_one_pin_everywhere() -> None:
    pins: dict[str, set[str]] = defaultdict(set)
    for u in uses_refs():
        if not u.ref.startswith("./"):
            action, sha = u.ref.split("@")
            pins[action].add(f"{sha} # {u.comment}")
    drift = {action: sorted(p) for action, p in pins.items() if len(p) > 1}
    assert not drift, drift


def test_token_permissions_start_empty_or_read_only() -> None:
    for path in workflow_files():
        perms = load(path).get("permissions")
        assert perms in ({}, {"contents": "read"}), (
            f"{rel(path)}: top-level permissions {perms!r}; widen them per job only"
        )


def test_every_job_has_a_time_limit() -> None:
    missing = [
        f"{rel(path)}: jobs.{job_id}"
        for path in workflow_files()
        for job_id, job in load(path)["jobs"].items()
        # A job that calls a reusable workflow takes the called jobs' limits.
        if "runs-on" in job and "timeout-minutes" not in job
    ]
    assert not missing, missing


def test_every_triggered_workflow_has_a_concurrency_group() -> None:
    missing = [
        rel(path)
        for path in workflow_files()
        # A reusable workflow runs inside its caller's group.
        if set(triggers(load(path))) != {"workflow_call"} and "concurrency" not in load(path)
    ]
    assert not missing, missing


def test_run_scripts_take_values_from_env_not_expressions() -> None:
    bad = [block.where for block in run_blocks() if "${{" in block.script]
    assert not bad, "pass these values through env: instead of ${{ }} in run:\n" + "\n".join(bad)


def test_ci_runs_the_readme_test_command_as_ci_run_does() -> None:
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^make test\b", readme, re.M), "README's test command moved"
    assert re.search(r"^exec make test$", (REPO / ".ci/run").read_text(), re.M)
    ci_runs = [
        b.script.strip() for b in run_blocks() if b.where.startswith(".github/workflows/ci.yml")
    ]
    assert "make test" in ci_runs and "make lint" in ci_runs, ci_runs
