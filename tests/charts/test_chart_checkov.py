"""checkov (kubernetes framework) finds nothing the chart could fix.

checkov knows nothing of KServe kinds, so besides the rendered objects it scans
the predictor pod each InferenceService asks for: the ServingRuntime container
with the InferenceService's model fields laid over it, and the pod fields of
both, the way KServe's controller merges them (simplified: maps merged key by
key). That is where the hardening lives.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import REPO_ROOT, Manifest, by_kind, runtime_for

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"

# Failed checks accepted on purpose, with the reason.
ACCEPTED = {
    "CKV_K8S_43": "images are pinned by tag (image.*.tag, default the chart's appVersion); "
    "pinning by digest is a deployment choice: set the tag to <tag>@sha256:<digest>",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent by default, so kind clusters can run images "
    "loaded without a registry; production values can set image.pullPolicy: Always",
    "CKV_K8S_40": "UID 1000 is the predictor image's user and KServe's runtimes' (TorchServe "
    "runs as 1000); podSecurityContext.runAsUser changes it",
}

# Pod-level fields of the InferenceService predictor and of a ServingRuntime.
POD_FIELDS = (
    "securityContext",
    "serviceAccountName",
    "automountServiceAccountToken",
    "nodeSelector",
    "tolerations",
    "imagePullSecrets",
    "affinity",
    "volumes",
)
MODEL_ONLY_FIELDS = ("modelFormat", "runtime", "protocolVersion", "storageUri", "storage")


def merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base.get(key), value) if key in base else value
        return out
    return copy.deepcopy(over)


def merge_named(base: list[dict], over: list[dict]) -> list[dict]:
    by_name = {item["name"]: item for item in base}
    by_name.update({item["name"]: item for item in over})
    return list(by_name.values())


def predictor_pod(isvc: Manifest, objects: list[Manifest]) -> Manifest | None:
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    try:
        runtime = runtime_for(objects, isvc)
    except LookupError:
        return None  # a runtime this chart does not declare (kserve-torchserve)
    (container,) = copy.deepcopy(runtime["spec"]["containers"])
    overrides = {k: v for k, v in model.items() if k not in MODEL_ONLY_FIELDS}
    container = merge(container, overrides)
    container["args"] = [
        a.replace("{{.Name}}", isvc["metadata"]["name"]) for a in container["args"]
    ]
    pod: dict[str, Any] = {"containers": [container]}
    for field in POD_FIELDS:
        ours, theirs = runtime["spec"].get(field), predictor.get(field)
        if field == "volumes":
            pod[field] = merge_named(ours or [], theirs or [])
        elif theirs is not None or ours is not None:
            pod[field] = (
                merge(ours, theirs)
                if ours is not None and theirs is not None
                else (theirs if theirs is not None else ours)
            )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{isvc['metadata']['name']}-predictor",
            "namespace": isvc["metadata"]["namespace"],
            "labels": predictor.get("labels", {}),
        },
        "spec": pod,
    }


def test_checkov_finds_nothing_to_fix(rendered: dict[str, list[Manifest]], tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: run scripts/test-setup/checkov.sh (.venv-checkov)")
    pods = 0
    for example, objects in rendered.items():
        docs = list(objects)
        for isvc in by_kind(objects, "InferenceService"):
            pod = predictor_pod(isvc, objects)
            if pod is not None:
                docs.append(pod)
                pods += 1
        (tmp_path / f"{example}.yaml").write_text(yaml.safe_dump_all(docs))
    assert pods >= 15
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    passed = [c for r in reports for c in r.get("results", {}).get("passed_checks", [])]
    unexpected = sorted(
        {
            f"{c['check_id']} {c['check_name']} ({c['resource']})"
            for c in failed
            if c["check_id"] not in ACCEPTED
        }
    )
    assert not unexpected, "\n".join(unexpected)
    # An acceptance that no longer fails is stale: drop it from ACCEPTED.
    assert set(ACCEPTED) <= {c["check_id"] for c in failed}
    # The pods were scanned: the hardening checks ran and passed on them.
    passed_ids = {c["check_id"] for c in passed}
    assert {
        "CKV_K8S_20",
        "CKV_K8S_22",
        "CKV_K8S_28",
        "CKV_K8S_37",
        "CKV_K8S_8",
        "CKV_K8S_9",
    } <= passed_ids
