"""The package's shape: layers in one direction, no cycles, KServe only at its edge.

Layers, lowest first (README, "How it works"): wire formats -> model ->
serving -> tools -> CLI. A module may import its own layer and those below,
never one above, so each layer can be read, tested and reused without the
ones on top of it. Imports inside functions count too: a lazy import upward
is still a dependency upward.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "predictors"

# Longest matching prefix wins.
LAYERS: dict[str, int] = {
    "predictors": 0,
    "predictors.errors": 0,
    "predictors.protocol": 1,
    "predictors.formats": 2,
    "predictors.metadata": 2,
    "predictors.drift": 2,
    "predictors.atomic": 2,
    "predictors.admission": 2,
    "predictors.model_store": 2,
    "predictors.model_inspect": 2,
    "predictors.validation": 2,
    "predictors.batching": 2,
    "predictors.runtimes": 2,
    "predictors.metrics": 2,
    "predictors.model_statistics": 2,
    "predictors.model": 2,
    "predictors.export": 2,
    "predictors.training": 2,
    "predictors.settings": 3,
    "predictors.kserve_flags": 3,
    "predictors.serving": 3,
    "predictors.local_server": 3,
    "predictors.bench": 4,
    "predictors.mlflow": 4,
    "predictors.torchserve": 4,
    "predictors.cli": 5,
}
LAYER_NAMES = ["base", "wire formats", "model", "serving", "tools", "cli"]
# The only modules that may import kserve: modelplane models inside KServe's ModelServer.
KSERVE_EDGE = {
    "predictors.protocol.kserve_codec",
    "predictors.serving.kserve_adapter",
    "predictors.bench.kserve_baseline",
}
# A file longer than this says in its docstring why it is not split.
MAX_LINES = 400
LONG_REASON = "Why this module is long:"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    if not prefixes:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")
    return LAYERS[max(prefixes, key=len)]


def imports_of(module: str) -> set[str]:
    """Every module (ours or not) this module imports, anywhere in the file."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from predictors.protocol import tensors` imports a module too.
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
    return found


def internal_imports(module: str) -> set[str]:
    return {name for name in imports_of(module) if name in MODULES and name != module}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_reaches_a_higher_layer(module: str) -> None:
    mine = layer_of(module)
    upward = sorted(
        f"{name} ({LAYER_NAMES[layer_of(name)]})"
        for name in internal_imports(module)
        if layer_of(name) > mine
    )
    assert not upward, f"{module} ({LAYER_NAMES[mine]}) imports upward: {', '.join(upward)}"


def test_no_import_cycles() -> None:
    graph = {m: internal_imports(m) for m in MODULES}
    # Tarjan's strongly connected components: a component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_only_the_kserve_edge_names_kserve() -> None:
    offenders = sorted(
        module
        for module in MODULES
        if module not in KSERVE_EDGE
        and any(n == "kserve" or n.startswith("kserve.") for n in imports_of(module))
    )
    assert not offenders, f"modules outside the KServe edge import kserve: {offenders}"


def test_importing_every_module_outside_the_edge_loads_no_kserve() -> None:
    """The same, at run time: no dependency pulls kserve in (it parses sys.argv and
    registers `inference.*` protobufs that clash with Triton's at import)."""
    modules = [m for m in MODULES if m not in KSERVE_EDGE and m != "predictors.cli.__main__"]
    script = textwrap.dedent(
        """
        import importlib, sys, traceback

        culprit = []

        class Spy:
            def find_spec(self, name, path=None, target=None):
                if (name == "kserve" or name.startswith("kserve.")) and not culprit:
                    culprit.append("".join(traceback.format_stack(limit=12)))
                return None

        sys.meta_path.insert(0, Spy())
        for module in sys.argv[1:]:
            importlib.import_module(module)
        if culprit:
            print(culprit[0])
            sys.exit(1)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", sorted(MODULES))
def test_long_modules_say_why(module: str) -> None:
    path = MODULES[module]
    text = path.read_text()
    lines = text.count("\n")
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert LONG_REASON in docstring, (
        f"{path.relative_to(PACKAGE.parent)} has {lines} lines: split it, or say in its "
        f"docstring '{LONG_REASON} ...'"
    )
