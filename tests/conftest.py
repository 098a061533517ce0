from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import MODEL_STORE, Server, start_server


@pytest.fixture(scope="session")
def bundled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with every bundled model, shared by the read-mostly tests."""
    server = start_server(MODEL_STORE, tmp_path_factory.mktemp("serve"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def model_store() -> Path:
    return MODEL_STORE
