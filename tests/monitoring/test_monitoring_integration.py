"""A real Prometheus scraping a real `modelplane serve`, started by scripts/local-prometheus.

Traffic goes in through tritonclient (HTTP and gRPC, good and bad requests);
then the predictor's /metrics and Prometheus must both show exactly that
traffic, every dashboard query must return data, and every rule must
evaluate without error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.support import (
    DASHBOARD,
    LOCAL_PROMETHEUS,
    REPO,
    base_metric,
    contract_metrics,
    dashboard_targets,
    free_port,
    referenced_metrics,
    rules,
    tool,
)

MODEL_STORE = REPO / "model-store"
# The bundled models of docs/contract.md: input name, one row's shape, classes.
MODELS = {
    "digits-onnx": ("image", [1, 8, 8], 10),
    "digits-torch": ("image", [1, 8, 8], 10),
    "wine-onnx": ("features", [13], 3),
    "wine-torch": ("features", [13], 3),
}
VERSION = "1"
PROTOCOLS = ("http", "grpc")
# Traffic is sent twice with a scrape in between, so that rate() sees every
# series increase between two samples.
ROUNDS = 2
GPU_METRICS = {"modelplane_gpu_memory_used_bytes", "modelplane_gpu_memory_total_bytes"}
SCRAPE_INTERVAL_S = 1
WAIT_S = 60

Labels = tuple[tuple[str, str], ...]


def modelplane_executable() -> str:
    """`modelplane` next to the running Python (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "modelplane"
    if beside.exists():
        return str(beside)
    found = shutil.which("modelplane")
    if found is None:
        pytest.skip("the `modelplane` executable is not installed (pip install -e .)")
    return found


# --- the stack: scripts/local-prometheus ------------------------------------


@dataclass
class Stack:
    http_port: int
    grpc_port: int
    prometheus_port: int
    workdir: Path
    started: float
    process: subprocess.Popen[bytes] | None = None

    def logs(self) -> str:
        parts = []
        for name in ("local-prometheus.out", "modelplane.log", "prometheus.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr, time=f"{time.time():.3f}")
        return list(data["result"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    executable = modelplane_executable()
    tool("prometheus")
    workdir = tmp_path_factory.mktemp("local-prometheus")
    stack = Stack(free_port(), free_port(), free_port(), workdir, time.time())
    cmd = [
        "bash",
        str(LOCAL_PROMETHEUS),
        "--model-store",
        str(MODEL_STORE),
        "--http-port",
        str(stack.http_port),
        "--grpc-port",
        str(stack.grpc_port),
        "--prometheus-port",
        str(stack.prometheus_port),
        "--scrape-interval",
        f"{SCRAPE_INTERVAL_S}s",
        "--workdir",
        str(workdir),
        "--modelplane",
        executable,
        "--ready-timeout",
        "90",
    ]
    out = workdir / "local-prometheus.out"
    with out.open("wb") as sink:
        # Its own process group, so teardown reaches the script and both servers.
        stack.process = subprocess.Popen(
            cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while "READY" not in out.read_text(errors="replace"):
            if stack.process.poll() is not None:
                pytest.fail(f"scripts/local-prometheus exited early:\n{stack.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"scripts/local-prometheus not ready in 120 s:\n{stack.logs()}")
            time.sleep(0.2)
        yield stack
    finally:
        stop_group(stack.process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    # Whatever is left of the group (the script waits for its children, but be sure).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


# --- /metrics parsing -----------------------------------------------------------


def samples(text: str) -> dict[str, dict[Labels, float]]:
    """Sample name -> {sorted label pairs: value}."""
    found: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def total(snapshot: dict[str, dict[Labels, float]], name: str, **match: str) -> float:
    return sum(
        value
        for labels, value in snapshot.get(name, {}).items()
        if all(dict(labels).get(k) == v for k, v in match.items())
    )


# --- traffic --------------------------------------------------------------------


@dataclass
class Sent:
    """What the test sent, to compare with what the metrics say."""

    # (model, protocol, status) -> requests; model "" for unknown models.
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # model -> rows inferred successfully.
    rows: Counter[str] = field(default_factory=Counter)


def plan() -> list[tuple[str, str, int, int, int]]:
    """(model, protocol, good, bad shape, bad datatype) per round.

    Different counts per model and protocol, so a swapped label shows.
    """
    out = []
    for i, model in enumerate(MODELS):
        for j, protocol in enumerate(PROTOCOLS):
            out.append((model, protocol, 2 + i + 2 * j, 1 + j, 1 + (i % 2)))
    return out


UNKNOWN = {"http": 2, "grpc": 3}
ROWS = {"http": 2, "grpc": 1}


def send_round(stack: Stack, sent: Sent) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    clients = {
        "http": (httpclient, httpclient.InferenceServerClient(f"127.0.0.1:{stack.http_port}")),
        "grpc": (grpcclient, grpcclient.InferenceServerClient(f"127.0.0.1:{stack.grpc_port}")),
    }
    expected_error = {
        "http": {"400": "400", "404": "404"},
        "grpc": {"400": "StatusCode.INVALID_ARGUMENT", "404": "StatusCode.NOT_FOUND"},
    }
    rng = np.random.default_rng(0)

    def infer(protocol: str, model: str, name: str, data: np.ndarray, dtype: str) -> Any:
        module, client = clients[protocol]
        tensor = module.InferInput(name, list(data.shape), dtype)
        tensor.set_data_from_numpy(data)
        return client.infer(model, [tensor])

    def expect_error(protocol: str, status: str, *args: Any) -> None:
        with pytest.raises(InferenceServerException) as caught:
            infer(protocol, *args)
        assert caught.value.status() == expected_error[protocol][status], str(caught.value)

    try:
        for model, protocol, good, bad_shape, bad_dtype in plan():
            name, shape, classes = MODELS[model]
            rows = ROWS[protocol]
            for _ in range(good):
                data = rng.random([rows, *shape], dtype=np.float32)
                result = infer(protocol, model, name, data, "FP32")
                assert result.as_numpy("probabilities").shape == (rows, classes)
                sent.requests[(model, protocol, "200")] += 1
                sent.rows[model] += rows
            for _ in range(bad_shape):
                wrong = rng.random([1, *shape[:-1], shape[-1] + 1], dtype=np.float32)
                expect_error(protocol, "400", model, name, wrong, "FP32")
                sent.requests[(model, protocol, "400")] += 1
            for _ in range(bad_dtype):
                wrong = rng.random([1, *shape]).astype(np.float64)
                expect_error(protocol, "400", model, name, wrong, "FP64")
                sent.requests[(model, protocol, "400")] += 1
        for protocol, count in UNKNOWN.items():
            for _ in range(count):
                data = np.zeros([1, 13], dtype=np.float32)
                expect_error(protocol, "404", "no-such-model", "features", data, "FP32")
                sent.requests[("", protocol, "404")] += 1
    finally:
        for _, client in clients.values():
            client.close()


def wait_for_scrape(stack: Stack, text: str) -> None:
    """Wait (bounded) until Prometheus holds the request counts /metrics showed."""
    want = total(samples(text), "modelplane_requests_total")
    deadline = time.monotonic() + WAIT_S
    got = None
    while time.monotonic() < deadline:
        result = stack.query("sum(modelplane_requests_total)")
        got = float(result[0]["value"][1]) if result else None
        if got == want:
            return
        time.sleep(0.25)
    pytest.fail(f"Prometheus has {got} requests, /metrics has {want}:\n{stack.logs()}")


@dataclass
class Traffic:
    sent: Sent
    before: dict[str, dict[Labels, float]]
    after: dict[str, dict[Labels, float]]

    def delta(self, name: str, **match: str) -> float:
        return total(self.after, name, **match) - total(self.before, name, **match)


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Traffic:
    before = samples(stack.metrics_text())
    sent = Sent()
    for _ in range(ROUNDS):
        send_round(stack, sent)
        wait_for_scrape(stack, stack.metrics_text())
    after = samples(stack.metrics_text())
    # Two more evaluations, so the recording rules have seen the last scrape.
    time.sleep(2 * SCRAPE_INTERVAL_S + 0.5)
    return Traffic(sent, before, after)


# --- /metrics agrees with the traffic -----------------------------------------------


def test_request_counts_on_metrics_are_exact(traffic: Traffic) -> None:
    for (model, protocol, status), count in traffic.sent.requests.items():
        if not model:
            continue
        got = traffic.delta(
            "modelplane_requests_total",
            model_name=model,
            model_version=VERSION,
            protocol=protocol,
            status=status,
        )
        assert got == count, (model, protocol, status)
    # Requests for a model that is not served count under their protocol and 404,
    # never under a served model's name.
    for protocol, count in UNKNOWN.items():
        assert (
            traffic.delta("modelplane_requests_total", protocol=protocol, status="404")
            == count * ROUNDS
        )
    # Nothing else was counted: no other status, no other model.
    assert traffic.delta("modelplane_requests_total") == sum(traffic.sent.requests.values())


def test_no_request_failed_on_the_server(traffic: Traffic) -> None:
    statuses = {dict(labels)["status"] for labels in traffic.after["modelplane_requests_total"]}
    assert statuses <= {"200", "400", "404"}


def test_duration_histogram_counts_the_served_requests(traffic: Traffic) -> None:
    for model in MODELS:
        for protocol in PROTOCOLS:
            ok = traffic.sent.requests[(model, protocol, "200")]
            bad = traffic.sent.requests[(model, protocol, "400")]
            match = {"model_name": model, "model_version": VERSION, "protocol": protocol}
            count = traffic.delta("modelplane_request_duration_seconds_count", **match)
            # Successes are always timed; rejected input may be timed too.
            assert ok <= count <= ok + bad, (model, protocol, count)
            inf = traffic.delta("modelplane_request_duration_seconds_bucket", le="+Inf", **match)
            slo = traffic.delta("modelplane_request_duration_seconds_bucket", le="0.25", **match)
            assert inf == count
            # The rules' SLO threshold is a bucket boundary the predictor emits.
            assert 0 < slo <= count
            assert traffic.delta("modelplane_request_duration_seconds_sum", **match) > 0


def test_batch_size_sums_to_the_rows_inferred(traffic: Traffic) -> None:
    for model in MODELS:
        match = {"model_name": model, "model_version": VERSION}
        rows = traffic.delta("modelplane_batch_size_sum", **match)
        batches = traffic.delta("modelplane_batch_size_count", **match)
        assert rows == traffic.sent.rows[model], model
        assert 1 <= batches <= rows


def test_stage_histogram_covers_every_stage(traffic: Traffic) -> None:
    contract_stages = {"queue", "decode", "inference", "encode"}
    stages = {
        dict(labels)["stage"] for labels in traffic.after["modelplane_request_stage_seconds_count"]
    }
    assert stages <= contract_stages
    for model in MODELS:
        ok = sum(traffic.sent.requests[(model, p, "200")] for p in PROTOCOLS)
        bad = sum(traffic.sent.requests[(model, p, "400")] for p in PROTOCOLS)
        match = {"model_name": model, "model_version": VERSION}
        count = "modelplane_request_stage_seconds_count"
        assert ok <= traffic.delta(count, stage="decode", **match) <= ok + bad, model
        assert traffic.delta(count, stage="encode", **match) == ok, model
        # One inference run per batch.
        assert traffic.delta(count, stage="inference", **match) == traffic.delta(
            "modelplane_batch_size_count", **match
        ), model


def test_nothing_is_in_flight_after_the_traffic(traffic: Traffic) -> None:
    inflight = traffic.after["modelplane_inflight_requests"]
    for model in MODELS:
        for protocol in PROTOCOLS:
            assert inflight[(("model_name", model), ("protocol", protocol))] == 0


def test_every_model_reports_ready_and_its_load_time(traffic: Traffic) -> None:
    for model in MODELS:
        labels = (("model_name", model), ("model_version", VERSION))
        assert traffic.after["modelplane_model_ready"][labels] == 1
        assert traffic.after["modelplane_model_load_seconds"][labels] > 0


def test_kserve_predict_histogram_is_emitted(traffic: Traffic) -> None:
    """docs/contract.md lists KServe's own request_predict_seconds{model_name}."""
    for model in MODELS:
        ok = sum(traffic.sent.requests[(model, p, "200")] for p in PROTOCOLS)
        count = traffic.delta("request_predict_seconds_count", model_name=model)
        assert 1 <= count <= ok, f"request_predict_seconds_count{{model_name={model!r}}}: {count}"


def test_gpu_memory_is_reported_only_with_a_gpu(traffic: Traffic) -> None:
    import torch

    for name in GPU_METRICS:
        series = traffic.after.get(name, {})
        if torch.cuda.is_available():
            assert series and all(value > 0 for value in series.values()), name
        else:
            assert not series, f"{name} reported without a GPU"


def test_every_contract_label_is_emitted(traffic: Traffic) -> None:
    for name, labels in contract_metrics().items():
        if name in GPU_METRICS and name not in traffic.after:
            continue
        sample_names = [name, f"{name}_total", f"{name}_count"]
        emitted = next((traffic.after[s] for s in sample_names if s in traffic.after), None)
        assert emitted, f"{name} is not emitted"
        for series in emitted:
            assert {k for k, _ in series} - {"le"} == set(labels), (name, series)


# --- Prometheus agrees with /metrics and with the traffic -----------------------------


def comparable(labels: Labels | dict[str, str]) -> Labels:
    """Labels as Prometheus stores them: without target labels, and an empty
    value (model_version="" of unknown models) is no label at all."""
    pairs = labels.items() if isinstance(labels, dict) else labels
    return tuple(sorted((k, v) for k, v in pairs if v != "" and k not in {"job", "instance"}))


def test_prometheus_holds_the_exact_request_counts(stack: Stack, traffic: Traffic) -> None:
    scraped = {
        comparable(r["metric"]): float(r["value"][1])
        for r in stack.query("modelplane_requests_total")
    }
    expected = {
        comparable((("__name__", "modelplane_requests_total"), *labels)): value
        for labels, value in traffic.after["modelplane_requests_total"].items()
    }
    assert scraped == expected
    for (model, protocol, status), count in traffic.sent.requests.items():
        if not model:
            continue
        selector = f'model_name="{model}", protocol="{protocol}", status="{status}"'
        [result] = stack.query(f"sum(modelplane_requests_total{{{selector}}})")
        baseline = total(
            traffic.before,
            "modelplane_requests_total",
            model_name=model,
            protocol=protocol,
            status=status,
        )
        assert float(result["value"][1]) - baseline == count


def test_prometheus_scrapes_the_predictor_as_job_modelplane(stack: Stack) -> None:
    [up] = stack.query('up{job="modelplane"}')
    assert up["value"][1] == "1"


def substitute(expr: str, stack: Stack) -> str:
    # Grafana's variables: All namespaces and models, and a rate window that
    # covers the whole test (Grafana would use 4 x the scrape interval or more).
    window = math.ceil(time.time() - stack.started) + 5
    return (
        expr.replace("$__rate_interval", f"{window}s")
        .replace("$namespace", ".*")
        .replace("$model", ".*")
    )


def test_every_dashboard_query_returns_data(stack: Stack, traffic: Traffic) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    emitted = {base_metric(name) for name in traffic.after} | {"up"}
    empty = []
    for title, expr in dashboard_targets(dashboard):
        names = {base_metric(n) for n in referenced_metrics(expr)}
        result = stack.query(substitute(expr, stack))
        if names <= GPU_METRICS and not names & emitted:
            assert result == [], title  # no GPU here: the panel is rightly empty
            continue
        values = [float(r["value"][1]) for r in result]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{title}: {expr} -> {result}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def test_dashboard_variables_list_the_models(stack: Stack, traffic: Traffic) -> None:
    # label_values(metric{...}, label) is Grafana's call to the label values API.
    selector = 'modelplane_model_ready{namespace=~".*"}'
    models = stack.api("label/model_name/values", **{"match[]": selector})
    assert set(models) == set(MODELS)
    stack.api("label/namespace/values", **{"match[]": "modelplane_model_ready"})


def test_every_rule_expression_evaluates(stack: Stack, traffic: Traffic) -> None:
    for rule in rules():
        stack.query(rule["expr"])  # asserts status success
    groups = stack.api("rules")["groups"]
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(evaluated) == {r.get("alert") or r["record"] for r in rules()}
    for name, rule in evaluated.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))


def test_recording_rules_yield_the_slow_share_per_model(stack: Stack, traffic: Traffic) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = stack.query("modelplane:request_duration_slow:ratio_rate5m")
        if {r["metric"]["model_name"] for r in result} >= set(MODELS):
            break
        assert time.monotonic() < deadline, f"recording rule has only {result}"
        time.sleep(0.5)
    for r in result:
        assert 0 <= float(r["value"][1]) <= 1, r


def test_a_healthy_predictor_raises_no_alert(stack: Stack, traffic: Traffic) -> None:
    active = [(a["labels"]["alertname"], a["state"]) for a in stack.api("alerts")["alerts"]]
    assert active == []
