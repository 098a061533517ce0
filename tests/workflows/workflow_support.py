"""Reading the GitHub Actions workflows the way the runner would, for their tests.

The workflows call the repository's scripts and make targets; these helpers
find those calls in every `run:` block and check each one against the script
it names: that it exists, is executable in git, and accepts the flags given.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.scripts.script_support import run_script

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / ".github"
WORKFLOWS = GITHUB / "workflows"
# What a flag's value becomes in a dry run when the workflow passes `"${VAR}"`.
PLACEHOLDER = "ci-placeholder"


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def action_files() -> list[Path]:
    return sorted([*GITHUB.glob("actions/*/action.yml"), *GITHUB.glob("actions/*/action.yaml")])


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path} is not a YAML mapping"
    return doc


def triggers(doc: dict[str, Any]) -> dict[str, Any]:
    """The `on:` section (YAML 1.1, which PyYAML reads, turns the key `on` into True)."""
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@dataclass(frozen=True)
class RunBlock:
    where: str  # file, job and step, for messages
    script: str


def _steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for job_id, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            found.append((f"jobs.{job_id}.steps[{i}]", step))
    for i, step in enumerate((doc.get("runs") or {}).get("steps") or []):
        found.append((f"runs.steps[{i}]", step))
    return found


def run_blocks() -> list[RunBlock]:
    blocks = []
    for path in [*workflow_files(), *action_files()]:
        for where, step in _steps(load(path)):
            if "run" in step:
                name = step.get("name", "")
                blocks.append(RunBlock(f"{rel(path)} {where} {name}".rstrip(), str(step["run"])))
    return blocks


@dataclass(frozen=True)
class Uses:
    where: str
    ref: str
    comment: str


_USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$")


def uses_refs() -> list[Uses]:
    """Every `uses:` line with its trailing comment (which YAML parsing drops)."""
    found = []
    for path in [*workflow_files(), *action_files()]:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            match = _USES_LINE.match(line)
            if match:
                found.append(
                    Uses(f"{rel(path)}:{lineno}", match["ref"], (match["comment"] or "").strip())
                )
    return found


def parsed_uses_count() -> int:
    """How many `uses:` the YAML holds, to prove the line scan saw them all."""
    count = 0
    for path in [*workflow_files(), *action_files()]:
        doc = load(path)
        count += sum(1 for job in (doc.get("jobs") or {}).values() if "uses" in job)
        count += sum(1 for _, step in _steps(doc) if "uses" in step)
    return count


# --- Commands in run: blocks ---------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of a repository script (or `make`) found in a run: block."""

    where: str
    program: str  # "scripts/..." or "make"
    args: tuple[str, ...]
    sourced: bool = False
    # Run through an interpreter (`python3 scripts/x.py`), so needs no exec bit.
    interpreted: bool = False

    def flags(self) -> list[str]:
        return [a.split("=", 1)[0] for a in self.args if a.startswith("-")]

    def __str__(self) -> str:
        return " ".join([self.program, *self.args])


# A comment starts at a `#` at the beginning of a line or after a blank; a `#`
# inside a word (`${TAG#v}`) does not start one.
_COMMENT = re.compile(r"(?:^|\s)#.*$")
# What ends a command's arguments: an operator, a redirection, a subshell's end
# or the closing quote of a "$(...)".
_ARGS = r"(?P<args>[^;&|()<>`\n]*)"
_SCRIPT_CALL = re.compile(
    r"(?:^|[\s;&|(`\"'])(?P<lead>(?:source|\.)\s+|(?:python3?|bash|\S*/python3?)\s+)?"
    r"(?P<path>(?:\./)?scripts/[A-Za-z0-9_./-]+)" + _ARGS
)
_MAKE_CALL = re.compile(r"(?:^|[\s;&|(`\"'])make\s+" + _ARGS)


def logical_lines(script: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", script)
    return [_COMMENT.sub("", line) for line in joined.splitlines()]


def _split_args(text: str) -> tuple[str, ...]:
    text = text.strip()
    try:
        words = shlex.split(text)
    except ValueError:
        # The capture ended inside a quoted string ("x=$(cmd --flag)"): the
        # quote belongs to the enclosing word.
        words = shlex.split(text.replace('"', "").replace("'", ""))
    # A variable the runner fills in becomes a fixed placeholder; a bare
    # number is the file descriptor of a following redirection (`2>&1`).
    words = [PLACEHOLDER if "$" in w else w for w in words]
    if words and words[-1].isdigit():
        words.pop()
    return tuple(words)


def calls(blocks: list[RunBlock]) -> list[Call]:
    found = []
    for block in blocks:
        for line in logical_lines(block.script):
            for match in _SCRIPT_CALL.finditer(line):
                lead = (match["lead"] or "").strip()
                path = match["path"].removeprefix("./")
                sourced = lead in {"source", "."}
                found.append(
                    Call(
                        block.where,
                        path,
                        _split_args(match["args"]),
                        sourced=sourced,
                        interpreted=bool(lead) and not sourced,
                    )
                )
            for match in _MAKE_CALL.finditer(line):
                found.append(Call(block.where, "make", _split_args(match["args"])))
    return found


# --- Checking a call against the script ----------------------------------------


def git_mode(path: Path) -> str | None:
    """The file's mode in git's index (100755 for executables), None if untracked."""
    proc = subprocess.run(
        ["git", "ls-files", "--stage", "--", rel(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return proc.stdout.split()[0]


def _is_python(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.readline()
    return path.suffix == ".py" or (head.startswith(b"#!") and b"python" in head)


def supports_dry_run(source: str) -> bool:
    """Scripts built on scripts/lib/common.sh take --dry-run through common_flag."""
    return "common_flag" in source or re.search(r"(^|[\s|(])--dry-run\)", source) is not None


def _flag_in_case_pattern(flag: str, source: str) -> bool:
    return re.search(rf"(^|[\s|(]){re.escape(flag)}(\s*\||\))", source, re.M) is not None


def check_call(call: Call, tmp: Path) -> list[str]:
    """What is wrong with this call; empty when the script takes it as written."""
    if call.program == "make":
        return _check_make(call)
    path = REPO / call.program
    if not path.is_file():
        return [f"{call.where}: {call.program} does not exist"]
    if call.sourced:
        return []
    problems = []
    mode = git_mode(path)
    if not call.interpreted and (
        not os.access(path, os.X_OK) or (mode is not None and mode != "100755")
    ):
        problems.append(
            f"{call.where}: {call.program} is not executable (mode {mode or 'untracked'}); "
            "a fresh checkout could not run it"
        )
    source = path.read_text()
    if _is_python(path):
        problems += _check_python_flags(call, path)
    elif supports_dry_run(source):
        res = run_script(
            call.program, "--dry-run", *call.args, tmp=tmp, env={"PYTHON": sys.executable}
        )
        if res.returncode != 0 or "unknown argument" in res.stderr:
            problems.append(
                f"{call.where}: `{call.program} --dry-run {' '.join(call.args)}` "
                f"failed ({res.returncode}): "
                f"{res.stderr.strip()[-1500:]}"
            )
    else:
        problems += [
            f"{call.where}: {call.program} has no case pattern for {flag}"
            for flag in call.flags()
            if not _flag_in_case_pattern(flag, source)
        ]
    return problems


def _check_python_flags(call: Call, path: Path) -> list[str]:
    if not call.flags():
        return []
    proc = subprocess.run(
        [sys.executable, str(path), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        return [f"{call.where}: `{call.program} --help` failed: {proc.stderr.strip()[-800:]}"]
    return [
        f"{call.where}: {call.program} --help does not list {flag}"
        for flag in call.flags()
        if not re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", proc.stdout)
    ]


def _check_make(call: Call) -> list[str]:
    make = shutil.which("make")
    assert make, "make is not installed"
    targets = [a for a in call.args if not a.startswith("-") and "=" not in a]
    problems = []
    for target in targets or [""]:
        proc = subprocess.run(
            [make, "-n", *([target] if target else [])],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            problems.append(
                f"{call.where}: `make -n {target}` failed: {proc.stderr.strip()[-800:]}"
            )
    return problems


def find_tool(name: str) -> str | None:
    """A tool installed in this interpreter's environment (the test extra), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)
