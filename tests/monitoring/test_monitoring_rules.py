"""The alert and recording rules: valid, unit-tested for firing and not firing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.monitoring.support import (
    PROMETHEUS_METRICS,
    PROMTOOL_TESTS,
    REPO,
    RULES,
    alerts,
    base_metric,
    contract_metrics,
    referenced_metrics,
    rules,
    run,
    tool,
)

EXPECTED_ALERTS = {
    "ModelplaneHighErrorRatio",
    "ModelplaneLatencySLOFastBurn",
    "ModelplaneLatencySLOSlowBurn",
    "ModelplaneModelNotReady",
    "ModelplaneTargetDown",
    "ModelplaneGPUMemoryNearFull",
    "ModelplaneShedding",
    "ModelplaneWastedWork",
    "ModelplaneInputDrift",
}


def test_promtool_check_rules() -> None:
    result = run([tool("promtool"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run([tool("promtool"), "test", "rules", str(PROMTOOL_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_issue_s_alerts_exist_with_severity_and_summary() -> None:
    by_name = {rule["alert"]: rule for rule in alerts()}
    assert set(by_name) == EXPECTED_ALERTS
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    unit_tests = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in unit_tests:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires >= EXPECTED_ALERTS, f"no firing case for {EXPECTED_ALERTS - fires}"
    assert quiet >= EXPECTED_ALERTS, f"no not-firing case for {EXPECTED_ALERTS - quiet}"


def test_unit_tests_catch_a_missing_alert(tmp_path: Path) -> None:
    """The promtool cases really exercise each alert: without it they fail."""
    promtool = tool("promtool")
    source = yaml.safe_load(RULES.read_text())
    runs = {}
    for name in sorted(EXPECTED_ALERTS):
        # Same relative layout, so the test file's rule_files path resolves.
        root = tmp_path / name
        rules_copy = root / RULES.relative_to(REPO)
        tests_copy = root / PROMTOOL_TESTS.relative_to(REPO)
        rules_copy.parent.mkdir(parents=True)
        tests_copy.parent.mkdir(parents=True)
        shutil.copy(PROMTOOL_TESTS, tests_copy)
        mutated = {
            "groups": [
                {**group, "rules": [r for r in group["rules"] if r.get("alert") != name]}
                for group in source["groups"]
            ]
        }
        rules_copy.write_text(yaml.safe_dump(mutated))
        # In parallel: each run replays hours of series.
        runs[name] = subprocess.Popen(
            [promtool, "test", "rules", str(tests_copy)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        for name, process in runs.items():
            assert process.wait(timeout=120) != 0, f"promtool tests pass without alert {name}"
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def test_rules_use_only_contract_metrics() -> None:
    known = set(contract_metrics()) | PROMETHEUS_METRICS
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        for name in referenced_metrics(rule["expr"]):
            assert base_metric(name) in known | recorded, (
                f"{rule.get('alert') or rule.get('record')} uses {name}, "
                "which docs/contract.md does not define"
            )


def test_grouping_labels_exist_on_the_metrics() -> None:
    """`by (...)` labels are metric labels or target labels the PodMonitor adds."""
    target_labels = {"namespace", "pod", "job", "instance", "le"}
    labels = {label for metric in contract_metrics().values() for label in metric}
    for rule in rules():
        for group in _by_clauses(rule["expr"]):
            assert group <= labels | target_labels, (rule.get("alert"), group)


def _by_clauses(expr: str) -> list[set[str]]:
    return [
        {label.strip() for label in match.split(",") if label.strip()}
        for match in re.findall(r"\bby\s*\(([^)]*)\)", expr)
    ]
