"""The MLflow tracking server and model registry modelplane talks to.

The tracking URI is the one given (`--tracking-uri`), else
MLFLOW_TRACKING_URI, else a sqlite file under the repository's ignored
`.work/mlflow/`. Every function takes the URI it works on: nothing reads or
sets MLflow's process-wide tracking URI behind the caller's back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from predictors.errors import Refused

URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
# Registered model names default to `mlflow-<family>` so that imports never
# collide with the bundled `<family>-onnx/1` entries built by `store build`.
REGISTERED_PREFIX = "mlflow-"


class RegistryError(Refused):
    """A registry operation was refused or failed; the message says why."""


def tracking_uri(given: str | None = None) -> str:
    """The URI to use: the one given, else MLFLOW_TRACKING_URI, else the local sqlite file."""
    if given:
        return given
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    repo = Path(__file__).resolve().parents[2]
    root = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
    return f"sqlite:///{root / '.work' / 'mlflow' / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    # A sqlite store keeps artifacts beside the database file; MLflow's own
    # default (./mlruns in the working directory) would litter wherever the
    # command happens to run. A tracking server decides for itself.
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def redacted(uri: str) -> str:
    """The tracking URI without credentials, fit for metadata.json."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def client(uri: str) -> Any:
    """An MlflowClient for `uri`, and MLflow's fluent API pointed at it too.

    `mlflow.start_run`, `log_model` and `register_model` have no URI argument:
    they use the process-wide one, so it is set here, to the same URI, by the
    one function that opens a connection.
    """
    # MLflow 3 reports usage to a remote endpoint unless told not to; modelplane
    # talks to loopback and the configured tracking server only.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


@dataclass(frozen=True)
class Resolved:
    """One registered model version, as a `models:/` URI named it."""

    name: str
    version: str
    run_id: str
    alias: str | None
    aliases: list[str]
    source: str


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` -> (name, alias, version)."""
    match = URI_RE.match(uri.strip())
    if not match:
        raise RegistryError(
            f"{uri!r} is not a registered model URI; use models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return match["name"], match["alias"], match["version"]


def resolve(mlflow_client: Any, uri: str) -> Resolved:
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(uri)
    try:
        if alias is not None:
            mv = mlflow_client.get_model_version_by_alias(name, alias)
        else:
            mv = mlflow_client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{uri}: not found in the MLflow registry: {exc.message}") from exc
    return Resolved(
        name, str(mv.version), mv.run_id or "", alias, sorted(mv.aliases or []), mv.source or ""
    )
