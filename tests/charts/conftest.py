"""Fixtures of the chart tests: the chart rendered once per example."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_support import (
    Manifest,
    examples,
    install_dry_run,
    kserve_crds_candidates,
    kserve_crds_dir,
    load_values,
    parse,
)


@pytest.fixture(scope="session")
def crds_dir() -> Path:
    found = kserve_crds_dir()
    if found is None:
        pytest.skip(
            f"KServe CRDs not found in {', '.join(map(str, kserve_crds_candidates()))}: "
            "set MODELPLANE_KSERVE_CRDS to a folder of KServe CRD files "
            "(scripts/fetch-kserve-crds downloads them)"
        )
    return found


@pytest.fixture(scope="session")
def releases() -> dict[str, dict[str, object]]:
    """Example file stem ("cpu", "keda", ...) -> the dry-run release (manifest, notes)."""
    return {path.stem: install_dry_run(load_values(path)) for path in examples()}


@pytest.fixture(scope="session")
def rendered(releases: dict[str, dict[str, object]]) -> dict[str, list[Manifest]]:
    return {name: parse(str(release["manifest"])) for name, release in releases.items()}
