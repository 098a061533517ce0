"""scripts/local-prometheus --dry-run and the shell scripts' hygiene.

The real run of scripts/local-prometheus is exercised by
test_monitoring_integration.py, which starts its stack through it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from tests.monitoring.support import LOCAL_PROMETHEUS, REPO, RULES, free_port, run, tool


def test_dry_run_prints_a_valid_config_and_starts_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "never-created"
    http_port, grpc_port, prometheus_port = free_port(), free_port(), free_port()
    result = run(
        [
            "bash",
            str(LOCAL_PROMETHEUS),
            "--dry-run",
            "--workdir",
            str(workdir),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
            "--prometheus-port",
            str(prometheus_port),
            "--scrape-interval",
            "2s",
            "--models",
            "wine-onnx",
            "--modelplane",
            "modelplane",
        ],
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert not workdir.exists()

    config_text, commands = result.stdout.split("# commands\n")
    config = yaml.safe_load(config_text)
    assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "2s"}
    assert config["rule_files"] == [str(RULES)]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "modelplane"  # what the rules and dashboard select
    assert job["static_configs"] == [{"targets": [f"127.0.0.1:{http_port}"]}]

    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(config_text)
    check = run([tool("promtool"), "check", "config", str(config_file)])
    assert check.returncode == 0, check.stdout + check.stderr

    serve, prometheus = (shlex.split(line) for line in commands.strip().splitlines())
    assert serve == [
        "modelplane",
        "serve",
        "--model-store",
        "model-store",
        "--host",
        "127.0.0.1",
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
        "--models",
        "wine-onnx",
    ]
    assert f"--web.listen-address=127.0.0.1:{prometheus_port}" in prometheus
    assert f"--storage.tsdb.path={workdir}/data" in prometheus


def test_unknown_option_is_rejected() -> None:
    result = run(["bash", str(LOCAL_PROMETHEUS), "--no-such-option"])
    assert result.returncode == 2
    assert "unknown option" in result.stderr
