"""Paths and helpers shared by the monitoring tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from predictors.local_server import free_port as free_port  # shared with the other tests

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "docs" / "contract.md"
MONITORING = REPO / "manifests" / "monitoring"
RULES = MONITORING / "rules" / "modelplane.rules.yaml"
DASHBOARD = MONITORING / "dashboards" / "modelplane.json"
PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool" / "modelplane.rules.test.yaml"
SYNC = REPO / "scripts" / "sync-monitoring"
LOCAL_PROMETHEUS = REPO / "scripts" / "local-prometheus"
CHART = REPO / "charts" / "modelplane"

SETUP_HINT = "install it with scripts/test-setup/prometheus.sh"

# Metrics that are not the predictor's: Prometheus' own per-target `up`.
PROMETHEUS_METRICS = {"up"}
# Histograms are queried through their series.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def tool(name: str) -> str:
    """Path of a Prometheus tool; missing means the setup step was skipped, which fails."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found on PATH: {SETUP_HINT}")
    return found


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def contract_metrics() -> dict[str, list[str]]:
    """Metric name -> labels, read from the metrics table of docs/contract.md."""
    metrics: dict[str, list[str]] = {}
    for line in CONTRACT.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        # "stage (`queue`, `decode`, ...)": the parenthesis lists values, not labels.
        label_cell = re.sub(r"\([^)]*\)", "", cells[2])
        labels = [label.strip().strip("`") for label in label_cell.split(",") if label.strip()]
        for name in re.findall(r"`([a-z_:]+)`", cells[0]):
            metrics[name] = labels
    return metrics


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def dashboard_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every query of every panel."""
    found = []
    for panel in dashboard["panels"]:
        for child in [panel, *panel.get("panels", [])]:
            for target in child.get("targets", []):
                found.append((child["title"], target["expr"]))
    return found


_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_WORDS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "by",
    "without",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "round",
    "abs",
    "bool",
    "offset",
    "le",
    "inf",
    "nan",
    "clamp_min",
    "clamp_max",
    "absent",
    "vector",
    "scalar",
    "topk",
    "bottomk",
    "label_replace",
}


def referenced_metrics(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not PromQL words or labels).

    Label matchers ({...}), grouping clauses (by (...)), strings and durations
    are removed first, so what remains are function names and metric names.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for ident in _IDENT.findall(text):
        if ident.lower() in _PROMQL_WORDS or re.fullmatch(r"[0-9.e]+", ident):
            continue
        names.add(ident)
    return names


def base_metric(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
