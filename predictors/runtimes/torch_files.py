"""Opening Torch model files without running code they carry.

A model file comes from whoever trained it; loading one must not hand that
person the server. What each format can do, and what is refused here:

- torch.export programs (.pt2) are a zip of JSON (the graph), raw tensor
  bytes and a few pickles. torch's loader unpickles with `weights_only=False`
  whatever the archive flags `use_pickle` (weights, constants), the custom
  and opaque objects among the constants, and the sample inputs when a safe
  load of them fails (torch/export/pt2_archive/_package.py, torch 2.13). A
  pickle can run any code. So the archive is read first, as data: any
  pickled weight or constant, any custom or opaque object, and sample inputs
  that do not load with `weights_only=True` refuse the file before torch
  opens it.
- TorchScript (.pt) is TorchScript code plus tensors, read by torch's own
  restricted unpickler: loading runs no Python. Its code can call any
  registered operator, though, and two of them reach the file system
  (`aten::from_file` reads a host file into a tensor, `aten::save` writes
  one). A graph that calls either is refused. TorchScript cannot import
  Python modules, open sockets or run shell commands.
- Both: the graph is checked for the same operators after loading, before
  any run (the trial run of `store add`, the warm-up of `serve`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# Operators (by schema name) that read or write host files; see the docstring.
FILE_OPERATORS = frozenset({"aten::from_file", "aten::save"})
# Constant payloads that are objects, not tensors (pt2 archive path_name prefixes).
OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")


class UnsafeModel(ValueError):
    """The file would run code, or touch host files, when loaded or run."""


def load_torchscript(path: Path, device: torch.device) -> torch.jit.ScriptModule:
    module = torch.jit.load(str(path), map_location=device)
    used = _script_operators(module) & FILE_OPERATORS
    if used:
        raise UnsafeModel(
            f"{path.name}: the TorchScript code calls {', '.join(sorted(used))}, which "
            "reads or writes host files; modelplane does not serve it"
        )
    return module.eval()


def load_exported_program(path: Path) -> torch.export.ExportedProgram:
    check_export_archive(path)
    program = torch.export.load(str(path))
    used = {
        name for name in (_target_name(n.target) for n in program.graph.nodes) if name
    } & FILE_OPERATORS
    if used:
        raise UnsafeModel(
            f"{path.name}: the program calls {', '.join(sorted(used))}, which reads or "
            "writes host files; modelplane does not serve it"
        )
    return program


def check_export_archive(path: Path) -> None:
    """Refuse a .pt2 whose loading would unpickle anything (see the module docstring)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UnsafeModel(f"{path.name} is not a torch.export archive: {exc}") from exc
    with archive:
        for name in archive.namelist():
            if name.endswith(("weights_config.json", "constants_config.json")):
                for fqn, payload in _payloads(archive, name):
                    if payload.get("use_pickle"):
                        raise UnsafeModel(
                            f"{path.name}: {fqn} is stored as a pickle, which can run code "
                            "when loaded; re-export it with plain tensors (torch.export.save "
                            "of a module whose parameters and buffers are dense tensors)"
                        )
                    if str(payload.get("path_name", "")).startswith(OBJECT_PREFIXES):
                        raise UnsafeModel(
                            f"{path.name}: {fqn} is a pickled object, which can run code "
                            "when loaded; modelplane serves programs of tensors only"
                        )
            elif "/data/sample_inputs/" in f"/{name}" and not name.endswith("/"):
                _check_sample_inputs(path, archive, name)


def _payloads(archive: zipfile.ZipFile, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        config = json.loads(archive.read(name))
    except ValueError as exc:
        raise UnsafeModel(f"{name} in the archive is not valid JSON: {exc}") from exc
    entries = config.get("config", {}) if isinstance(config, dict) else {}
    if not isinstance(entries, dict):
        raise UnsafeModel(f"{name} in the archive is not a payload config")
    for fqn, payload in entries.items():
        yield str(fqn), payload if isinstance(payload, dict) else {}


def _check_sample_inputs(path: Path, archive: zipfile.ZipFile, name: str) -> None:
    import io

    # torch retries a failed safe load with weights_only=False: so only a
    # file the safe loader accepts is let through.
    try:
        torch.load(io.BytesIO(archive.read(name)), weights_only=True)
    except Exception as exc:
        raise UnsafeModel(
            f"{path.name}: its sample inputs are not plain tensors ({type(exc).__name__}); "
            "torch would unpickle them unsafely"
        ) from exc


def _target_name(target: object) -> str | None:
    schema = getattr(target, "_schema", None)
    return getattr(schema, "name", None)


def _script_operators(module: torch.jit.ScriptModule) -> set[str]:
    found: set[str] = set()

    def visit(block: Any) -> None:
        for node in block.nodes():
            found.add(node.kind())
            for inner in node.blocks():
                visit(inner)

    visit(module.inlined_graph)
    return found
