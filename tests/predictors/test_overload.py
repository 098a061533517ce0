"""`modelplane overload` reports every figure it promises (a benchmark: numbers are not judged)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import MODEL_STORE, MODELPLANE


def test_overload_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    result = subprocess.run(
        [MODELPLANE, "overload", "--model-store", str(MODEL_STORE), "--model", "wine-onnx",
         "--capacity-duration", "1", "--duration", "1", "--rate-factor", "2",
         "--mixed-duration", "1", "--mixed-callers", "4", "--big-body-mb", "20",
         "--soak", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    for protocol in ("grpc", "http"):
        assert report["capacity_rps"][protocol] > 0
        figures = report["overload"][protocol]
        assert figures["sent"] > 0
        assert figures["sent"] == sum(
            figures[k] for k in ("in_time", "late", "shed", "expired", "gave_up", "other")
        )
        assert {"completed", "wasted", "dropped", "shed"} <= set(figures["server"])
        assert figures["server_goodput_vs_capacity"] >= 0
    assert report["mixed"]["http_rps"] > 0 and report["mixed"]["grpc_rps"] > 0
    assert report["mixed"]["health_check_ms_p50"] is not None
    # 20 MB of JSON is over the 16 MiB JSON limit: refused, not decoded.
    assert report["big_body"]["status"] == 413
    assert report["big_body"]["liveness_ms_max_during_15mb_decode"] > 0
    assert report["soak"]["rps"] > 0
    assert report["rss_mib"], "RSS was sampled"
    assert "goodput" in result.stdout and "as the server sent it" in result.stdout
