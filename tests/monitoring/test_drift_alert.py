"""A real Prometheus fires ModelplaneInputDrift on a served wine model whose inputs drifted.

`modelplane serve` serves the bundled wine-onnx (its metadata.json carries the
training split's profile); a Prometheus on loopback scrapes it every second
and evaluates the real rule's expression, copied from
manifests/monitoring/rules/modelplane.rules.yaml with `for: 0s` instead of 15
minutes (the only change). Held-out rows keep it quiet; then rows with
`proline` shifted by two training standard deviations fire it, for proline
only.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml

from predictors.training import build, datasets
from tests.monitoring.support import alerts, free_port, tool
from tests.support import MODEL_STORE, Server, start_server

ALERT = "ModelplaneInputDrift"
MODEL = "wine-onnx"
SHIFTED = "proline"
WAIT_S = 60
WINE = datasets.wine(build.SEED)


def drift_rule() -> dict[str, Any]:
    [rule] = [a for a in alerts() if a["alert"] == ALERT]
    return rule


def rows_needed() -> int:
    """The rows a window needs before the rule judges it (`..._window_rows >= N`)."""
    expr = drift_rule()["expr"]
    return int(expr.split("modelplane_input_drift_window_rows >=")[1].split()[0])


class Prometheus:
    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.process, self.log = port, process, log

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def drift_alerts(self) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == ALERT]

    def wait_for(self, what: str, check: Any) -> Any:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.25)
        pytest.fail(f"Prometheus: {what} not seen in {WAIT_S} s\n{self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(MODEL_STORE, tmp_path_factory.mktemp("serve"), "--models", MODEL)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def prometheus(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    rule = {**drift_rule(), "for": "0s"}
    (workdir / "drift.rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "drift", "rules": [rule]}]})
    )
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "drift.rules.yaml")],
        "scrape_configs": [
            {"job_name": "modelplane", "static_configs": [{"targets": [server.http_url]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary, f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        running = Prometheus(port, process, log)
        running.wait_for("readiness", running.ready)
        running.wait_for(
            "the drift series", lambda: running.query("modelplane_input_drift_window_rows")
        )
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def send(server: Server, rows: np.ndarray, per_request: int = 15) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        for start in range(0, len(rows), per_request):
            chunk = np.ascontiguousarray(rows[start : start + per_request])
            tensor = httpclient.InferInput("features", list(chunk.shape), "FP32")
            tensor.set_data_from_numpy(chunk)
            client.infer(MODEL, [tensor])
    finally:
        client.close()


def metrics_psi(server: Server) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{server.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        s.labels["feature"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "modelplane_input_drift_psi" and s.labels["model_name"] == MODEL
    }


def window_rows(prometheus: Prometheus, at_least: int) -> bool:
    result = prometheus.query(f"modelplane_input_drift_window_rows >= {at_least}")
    return bool(result)


def test_the_copied_rule_is_the_real_one() -> None:
    rule = drift_rule()
    assert rule["for"] == "15m"
    assert "modelplane_input_drift_psi" in rule["expr"] and rows_needed() == 200


def test_heldout_rows_keep_the_alert_quiet_and_drift_fires_it(
    server: Server, prometheus: Prometheus
) -> None:
    threshold = float(drift_rule()["expr"].strip().rsplit(">", 1)[1])
    # Enough held-out rows for the rule to judge the window (it ignores fewer).
    copies = -(-rows_needed() // len(WINE.x_test))
    send(server, np.concatenate([WINE.x_test] * copies))
    heldout = copies * len(WINE.x_test)
    prometheus.wait_for("the held-out rows", lambda: window_rows(prometheus, heldout))
    # A few evaluations of the rule over the held-out window: nothing, not even pending.
    time.sleep(3)
    [group] = prometheus.api("rules")["groups"]
    assert [r["health"] for r in group["rules"]] == ["ok"], group
    assert prometheus.drift_alerts() == []
    assert max(metrics_psi(server).values()) < threshold

    # Four times as many rows with proline shifted by two training standard deviations.
    column = build.feature_names("wine").index(SHIFTED)  # type: ignore[union-attr]
    moved = WINE.x_test.copy()
    moved[:, column] += 2 * WINE.x_train[:, column].std()
    send(server, np.concatenate([moved] * (4 * copies)))
    psi = metrics_psi(server)
    assert psi[SHIFTED] > threshold
    assert {f for f, v in psi.items() if v > threshold} == {SHIFTED}

    firing = prometheus.wait_for(
        "the drift alert firing",
        lambda: [a for a in prometheus.drift_alerts() if a["state"] == "firing"],
    )
    assert [(a["labels"]["model_name"], a["labels"]["feature"]) for a in firing] == [
        (MODEL, SHIFTED)
    ]
    assert firing[0]["labels"]["severity"] == "warning"
    assert float(firing[0]["value"]) > threshold
    # One evaluation later still only proline: no other feature joined it.
    time.sleep(2)
    assert {a["labels"]["feature"] for a in prometheus.drift_alerts()} == {SHIFTED}
