"""Smoke-test a running modelplane predictor over V2 HTTP and gRPC.

    python3 scripts/lib/v2_smoke.py --http 127.0.0.1:8080 --grpc 127.0.0.1:8081 \
        [--model NAME ...] [--timeout SECONDS]

Checks, and exits non-zero naming the first that fails:
  HTTP  /v2/health/live, /v2/health/ready, /v2/models/<m>/ready, metadata,
        an inference with a batch of 2, and /metrics naming modelplane_requests_total;
  gRPC  ServerLive, ServerReady, ModelReady, ModelMetadata and ModelInfer with
        the same batch, whose outputs must match the HTTP outputs.
Without --model every model listed by the server (`GET /v2/models`, falling back
to the `models` field of `GET /v2`) is checked. HTTP uses only the standard
library; gRPC needs tritonclient[grpc] and numpy.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.request
from typing import Any

# V2 datatype -> numpy dtype name, for the types the bundled models use and a
# few more; anything else is reported instead of guessed.
NUMPY_TYPES = {"FP32": "float32", "FP64": "float64", "INT64": "int64", "INT32": "int32"}
BATCH = 2


class SmokeError(Exception):
    """A check failed; the message says which and what was seen."""


def http_json(
    base: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{base}{path}",
        data=data,
        headers={"Content-Type": "application/json"} if data else {},
        method="POST" if data else "GET",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    except (urllib.error.URLError, OSError) as err:
        raise SmokeError(f"HTTP {path}: cannot connect to {base}: {err}") from err
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def expect_200(base: str, path: str, timeout: float) -> Any:
    status, body = http_json(base, path, timeout=timeout)
    if status != 200:
        raise SmokeError(f"HTTP GET {path}: status {status}, body {body!r}")
    return body


def wait_ready(base: str, deadline: float) -> None:
    """Polls /v2/health/ready: a port-forward or a loading model needs a moment."""
    last = ""
    while time.monotonic() < deadline:
        try:
            status, body = http_json(base, "/v2/health/ready", timeout=2)
            if status == 200:
                return
            last = f"status {status}: {body!r}"
        except SmokeError as err:
            last = str(err)
        time.sleep(1)
    raise SmokeError(f"server at {base} not ready in time ({last})")


def list_models(base: str, timeout: float) -> list[str]:
    status, body = http_json(base, "/v2/models", timeout=timeout)
    if status == 200 and isinstance(body, dict) and body.get("models"):
        return [m if isinstance(m, str) else m["name"] for m in body["models"]]
    server = expect_200(base, "/v2", timeout)
    models = server.get("models") if isinstance(server, dict) else None
    if not models:
        raise SmokeError("the server lists no models (GET /v2/models and GET /v2); pass --model")
    return [m if isinstance(m, str) else m["name"] for m in models]


def sample_input(spec: dict[str, Any]) -> tuple[list[int], list[float]]:
    """A deterministic batch: the batch axis (-1) becomes BATCH, values in [-1, 1]."""
    dims = [BATCH if d == -1 else int(d) for d in spec["shape"]]
    if spec["shape"] and spec["shape"][0] != -1:
        dims = [BATCH, *dims]
    count = math.prod(dims)
    values = [math.sin(0.37 * i) for i in range(count)]
    return dims, values


def check_model(http: str, grpc_client: Any, model: str, timeout: float) -> str:
    import numpy as np
    import tritonclient.grpc as grpcclient

    expect_200(http, f"/v2/models/{model}/ready", timeout)
    meta = expect_200(http, f"/v2/models/{model}", timeout)
    if not isinstance(meta, dict) or not meta.get("inputs") or not meta.get("outputs"):
        raise SmokeError(f"{model}: metadata has no inputs/outputs: {meta!r}")

    inputs_json = []
    grpc_inputs = []
    for spec in meta["inputs"]:
        dtype = NUMPY_TYPES.get(spec["datatype"])
        if dtype is None:
            raise SmokeError(
                f"{model}: input {spec['name']} has datatype {spec['datatype']}, "
                "which this smoke test does not generate"
            )
        dims, values = sample_input(spec)
        inputs_json.append(
            {"name": spec["name"], "shape": dims, "datatype": spec["datatype"], "data": values}
        )
        tensor = grpcclient.InferInput(spec["name"], dims, spec["datatype"])
        tensor.set_data_from_numpy(np.asarray(values, dtype=dtype).reshape(dims))
        grpc_inputs.append(tensor)

    status, body = http_json(
        http, f"/v2/models/{model}/infer", {"id": "smoke", "inputs": inputs_json}, timeout=timeout
    )
    if status != 200 or not isinstance(body, dict):
        raise SmokeError(f"{model}: HTTP infer: status {status}, body {body!r}")
    http_out = {
        o["name"]: np.asarray(o["data"], dtype="float64").reshape(o["shape"])
        for o in body.get("outputs", [])
    }
    for spec in meta["outputs"]:
        got = http_out.get(spec["name"])
        if got is None:
            raise SmokeError(f"{model}: HTTP infer has no output {spec['name']} ({list(http_out)})")
        if got.shape[0] != BATCH or not np.all(np.isfinite(got)):
            raise SmokeError(
                f"{model}: HTTP output {spec['name']} has shape {got.shape} "
                f"or non-finite values; expected batch {BATCH}"
            )
        if spec["name"] == "probabilities" and not np.allclose(got.sum(axis=-1), 1.0, atol=1e-3):
            raise SmokeError(f"{model}: probabilities do not sum to 1: {got.sum(axis=-1)}")

    if not grpc_client.is_model_ready(model):
        raise SmokeError(f"{model}: gRPC ModelReady is false")
    gmeta = grpc_client.get_model_metadata(model, as_json=True)
    if gmeta.get("name") != model:
        raise SmokeError(f"{model}: gRPC ModelMetadata names {gmeta.get('name')!r}")
    result = grpc_client.infer(model, grpc_inputs, request_id="smoke", client_timeout=timeout)
    for name, expected in http_out.items():
        got = result.as_numpy(name)
        if got is None:
            raise SmokeError(f"{model}: gRPC infer has no output {name}")
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise SmokeError(
                f"{model}: gRPC output {name} differs from HTTP ({got.shape} vs {expected.shape})"
            )
    shapes = ", ".join(f"{n}{list(a.shape)}" for n, a in http_out.items())
    return f"{model}: HTTP and gRPC infer agree ({shapes})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", required=True, help="HOST:PORT of the V2 REST endpoint")
    parser.add_argument("--grpc", required=True, help="HOST:PORT of the V2 gRPC endpoint")
    parser.add_argument("--model", action="append", default=[], help="model name (repeatable)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for readiness, and per request"
    )
    args = parser.parse_args(argv)

    try:
        import tritonclient.grpc as grpcclient
    except ImportError:
        print(
            "FAIL: the gRPC check needs tritonclient[grpc] and numpy "
            "(pip install 'tritonclient[grpc]' numpy)",
            file=sys.stderr,
        )
        return 2

    try:
        wait_ready(args.http, time.monotonic() + args.timeout)
        expect_200(args.http, "/v2/health/live", args.timeout)
        print(f"ok   HTTP {args.http}: live and ready")
        client = grpcclient.InferenceServerClient(url=args.grpc)
        if not (client.is_server_live() and client.is_server_ready()):
            raise SmokeError(f"gRPC {args.grpc}: server not live/ready")
        print(f"ok   gRPC {args.grpc}: live and ready")
        models = args.model or list_models(args.http, args.timeout)
        for model in models:
            print(f"ok   {check_model(args.http, client, model, args.timeout)}")
        status, metrics = http_json(args.http, "/metrics", timeout=args.timeout)
        if status != 200 or "modelplane_requests_total" not in str(metrics):
            raise SmokeError(f"/metrics: status {status}, no modelplane_requests_total")
        print("ok   /metrics counts the requests (modelplane_requests_total)")
    except SmokeError as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # gRPC errors and the like: say what, not a traceback
        print(f"FAIL: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"smoke passed: {len(models)} model(s) over HTTP and gRPC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
