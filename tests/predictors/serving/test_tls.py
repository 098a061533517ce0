"""--ssl_certfile/--ssl_keyfile: HTTPS on the HTTP port and TLS on the gRPC port.

KServe's own server serves HTTPS only (kserve 0.21.0 model_server.py,
ModelServer.__init__, which also moves the default port 8080 to 8443); here
gRPC gets TLS too, so a mesh-less cluster can encrypt both. Checked with the
real clients a user runs: curl --cacert, tritonclient over HTTPS and gRPC TLS.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.support import MODEL_STORE, Server, start_server


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder)
    server = start_server(
        MODEL_STORE, folder, "--models", "wine-onnx",
        "--ssl_certfile", str(cert), "--ssl_keyfile", str(key), scheme="https", cafile=cert,
    )  # fmt: skip
    try:
        yield server, cert
    finally:
        server.stop()


def test_curl_with_the_ca_reaches_https(tls_server: tuple[Server, Path]) -> None:
    server, cert = tls_server
    url = f"https://{server.http_url}/v2/health/ready"
    ok = subprocess.run(
        ["curl", "-sS", "--cacert", str(cert), url], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == '{"ready":true}'
    # Without the CA, curl refuses the certificate: it really is TLS.
    refused = subprocess.run(["curl", "-sS", url], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 60, refused.stderr
    # Plain HTTP to the TLS port gets no V2 answer.
    plain = subprocess.run(
        ["curl", "-sS", f"http://{server.http_url}/v2/health/ready"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert '{"ready":true}' not in plain.stdout


def test_tritonclient_infers_over_https_and_grpc_tls(tls_server: tuple[Server, Path]) -> None:
    server, cert = tls_server
    x = np.ones((2, 13), np.float32)

    def context() -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(cert))

    http = httpclient.InferenceServerClient(server.http_url, ssl=True, ssl_context_factory=context)
    inp = httpclient.InferInput("features", [2, 13], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    over_https = http.infer("wine-onnx", [inp]).as_numpy("probabilities")

    grpc = grpcclient.InferenceServerClient(server.grpc_url, ssl=True, root_certificates=str(cert))
    ginp = grpcclient.InferInput("features", [2, 13], "FP32")
    ginp.set_data_from_numpy(x)
    over_grpc = grpc.infer("wine-onnx", [ginp]).as_numpy("probabilities")
    assert over_https.shape == (2, 3)
    np.testing.assert_array_equal(over_https, over_grpc)
    # A plaintext gRPC client cannot talk to the TLS port.
    plain = grpcclient.InferenceServerClient(server.grpc_url)
    with pytest.raises(InferenceServerException) as refused:
        plain.is_server_live(client_timeout=5)
    assert refused.value.status() == "StatusCode.UNAVAILABLE"
