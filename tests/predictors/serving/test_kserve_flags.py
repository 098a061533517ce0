"""`modelplane serve` takes every flag of KServe's ModelServer, read from KServe itself.

KServe's flags are those of `kserve.model_server.parser` (kserve 0.21.0,
kserve/model_server.py): a ServingRuntime or InferenceService written for a
KServe predictor passes them, and a server that rejects one crash-loops.
The parser is read in a subprocess: importing kserve parses sys.argv and
registers protobufs that clash with tritonclient's in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from predictors.cli import parser as modelplane_parser
from tests.support import MODEL_STORE, MODELPLANE, free_port, start_server

KSERVE_PARSER = textwrap.dedent(
    """
    import json, sys
    sys.argv = sys.argv[:1]
    from kserve import model_server
    flags = []
    for action in model_server.parser._actions:
        if not action.option_strings:
            continue
        flags.append({
            "options": action.option_strings,
            "dest": action.dest,
            "default": action.default,
            "choices": list(action.choices) if action.choices else None,
            "nargs": action.nargs,
            "kind": type(action).__name__,
        })
    print(json.dumps(flags))
    """
)
# Where modelplane's default differs from KServe's on purpose (README, "modelplane serve").
DIFFERENT_DEFAULTS = {
    # A log line per request costs more than a small model's run; the metrics have it.
    "enable_latency_logging": False,
    # KServe's default is "model"; modelplane names a model after its store entry.
    "model_name": None,
    # Read from the environment by both; not set here.
    "ssl_certfile": None,
    "ssl_keyfile": None,
}


@pytest.fixture(scope="module")
def kserve_flags() -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", KSERVE_PARSER], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    flags = json.loads(result.stdout)
    assert len(flags) > 20, flags  # the real parser, not an empty one
    return flags


def serve_parser():
    root = modelplane_parser()
    serve = root._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    return serve


def test_every_kserve_flag_is_accepted_with_kserve_default(kserve_flags: list[dict]) -> None:
    ours = {o: a for a in serve_parser()._actions for o in a.option_strings}
    for flag in kserve_flags:
        for option in flag["options"]:
            assert option in ours, f"modelplane serve lacks KServe's {option}"
        action = ours[flag["options"][0]]
        if flag["dest"] in DIFFERENT_DEFAULTS:
            assert action.default == DIFFERENT_DEFAULTS[flag["dest"]], flag
        elif action.default != "==SUPPRESS==":  # transformer flags: present only when given
            assert action.default == flag["default"], (flag, action.default)
        if flag["choices"]:
            assert list(action.choices) == flag["choices"], flag


def every_flag_args(kserve_flags: list[dict], tmp: Path) -> list[str]:
    """A value for every KServe flag, as a user copying KServe's args would give."""
    log_config = tmp / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"plain": {"format": "CONFIGURED %(name)s %(message)s"}},
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(tmp / "server.log"),
                        "formatter": "plain",
                    }
                },
                "root": {"level": "INFO", "handlers": ["file"]},
            }
        )
    )
    values = {
        "http_port": None,  # given by start_server
        "grpc_port": None,
        "model_name": "wine",
        "workers": "1",
        "max_threads": "2",
        "max_asyncio_workers": "3",
        "enable_grpc": "true",
        "enable_docs_url": "true",
        "enable_latency_logging": "true",
        "configure_logging": "true",
        "log_config_file": str(log_config),
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %({x-request-id}i)s',
        "event_loop": "asyncio",
        "timeout_keep_alive": "30",
        "predictor_host": "predictor.example:80",
        "protocol": "v2",
        "predictor_protocol": "v2",
        "predictor_use_ssl": "false",
        "predictor_request_timeout_seconds": "60",
        "predictor_request_retries": "1",
        "grpc_max_send_message_length": "16777216",
        "grpc_max_receive_message_length": "16777216",
        "ssl_certfile": None,  # TLS has its own test
        "ssl_keyfile": None,
    }
    args = []
    for flag in kserve_flags:
        dest = flag["dest"]
        assert dest in values or flag["kind"] == "_StoreTrueAction", f"no value for {dest}"
        if flag["kind"] == "_StoreTrueAction":
            args.append(flag["options"][0])
        elif values[dest] is not None:
            args += [flag["options"][0], values[dest]]
    return args


def test_serves_with_every_kserve_flag_at_once(kserve_flags: list[dict], tmp_path: Path) -> None:
    model_dir = MODEL_STORE / "wine-onnx"  # KServe mounts one model at /mnt/models
    server = start_server(
        model_dir, tmp_path, "--model_dir", str(model_dir), *every_flag_args(kserve_flags, tmp_path)
    )
    try:
        x = np.ones((1, 13), np.float32)
        client = grpcclient.InferenceServerClient(server.grpc_url)
        inp = grpcclient.InferInput("features", [1, 13], "FP32")
        inp.set_data_from_numpy(x)
        probabilities = client.infer("wine", [inp]).as_numpy("probabilities")
        assert probabilities.shape == (1, 3)
        response = httpx.post(
            f"http://{server.http_url}/v2/models/wine/infer",
            json={
                "inputs": [
                    {"name": "features", "datatype": "FP32", "shape": [1, 13], "data": [1.0] * 13}
                ]
            },
            headers={"x-request-id": "req-42"},
        )
        assert response.status_code == 200
        np.testing.assert_allclose(
            response.json()["outputs"][0]["data"], probabilities[0], atol=1e-6
        )
        # --enable_docs_url: Swagger UI and its schema.
        docs = httpx.get(f"http://{server.http_url}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        assert (
            "/v2/models/{name}/infer"
            in httpx.get(f"http://{server.http_url}/openapi.json").json()["paths"]
        )
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    # --log_config_file configured logging; the others each left their line.
    assert "CONFIGURED" in log
    assert '127.0.0.1 "POST /v2/models/wine/infer HTTP/1.1" 200' in log  # --access_log_format
    assert "req-42" in log
    assert "requestId: req-42, preprocess_ms: 0.0, explain_ms: 0, predict_ms:" in log
    assert "--predictor_host is a KServe transformer flag; a predictor ignores it" in log


def test_docs_are_off_by_default(bundled_server) -> None:
    assert httpx.get(f"http://{bundled_server.http_url}/docs").status_code == 404
    assert httpx.get(f"http://{bundled_server.http_url}/openapi.json").status_code == 404


def test_more_than_one_worker_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [MODELPLANE, "serve", "--model_dir", str(MODEL_STORE), "--workers", "2",
         "--http_port", str(free_port()), "--grpc_port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--workers must be 1: run more replicas to scale" in result.stderr
