"""The docs say what the code does: every module in README's map, every serve flag in
docs/contract.md, and the README's serve synopsis quoting the parser's real defaults."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from predictors.cli import parser

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
# Packages the map summarises in one line (their own __init__.py lists their modules).
SUMMARISED = ("bench", "mlflow", "torchserve", "cli", "training")


def readme_section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def serve_actions() -> list:
    serve = parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    return [a for a in serve._actions if a.option_strings and a.dest != "help"]


def test_every_module_is_on_the_readme_map() -> None:
    block = readme_section("How it works").split("```")[1]
    missing = []
    for path in sorted((REPO / "predictors").rglob("*.py")):
        relative = path.relative_to(REPO / "predictors")
        in_package = relative.parts[0] in SUMMARISED or (
            path.name == "__init__.py" and len(relative.parts) > 1
        )
        if in_package:
            if f"{relative.parts[0]}/" not in block:
                missing.append(str(relative))
        elif not re.search(rf"\b{re.escape(path.name)}\b", block):
            missing.append(str(relative))
    assert not missing, f"README's 'How it works' map lacks: {missing}"


def test_every_serve_flag_is_in_the_contract() -> None:
    contract = (REPO / "docs" / "contract.md").read_text()
    missing = [o for a in serve_actions() for o in a.option_strings if f"`{o}`" not in contract]
    assert not missing, f"docs/contract.md lacks serve flags: {missing}"


def test_readme_synopsis_quotes_real_defaults() -> None:
    synopsis = readme_section("modelplane serve").split("```")[1]
    defaults = {o: a.default for a in serve_actions() for o in a.option_strings}
    quoted = re.findall(r"\[(--[\w-]+) ([^\]\s|]+)\]", synopsis)
    assert quoted, "no [--flag value] in the synopsis"
    for flag, value in quoted:
        assert flag in defaults, f"README's synopsis names {flag}, which serve lacks"
        default = defaults[flag]
        if default is None or value.isupper() or "|" in value or "," in value:
            continue  # a placeholder (NAME, a,b, auto|cpu), not a default
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert value in (shown, f"{default:g}" if isinstance(default, float) else shown), (
            f"README's synopsis says {flag} {value}; the default is {default!r}"
        )


def test_make_targets_named_in_the_readme_exist() -> None:
    targets = set(re.findall(r"`make ([a-z][\w-]*)", README))
    assert {"serve", "test"} <= targets
    for target in sorted(targets):
        result = subprocess.run(
            ["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"make {target}: {result.stderr}"
