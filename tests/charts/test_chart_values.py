"""Bad values are refused with a message that says what is wrong and where:
values.schema.json for what a schema can state, template `fail` for the rest."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_support import install_dry_run

MODEL = {"name": "digits-onnx", "format": "onnx", "storageUri": "pvc://store/digits-onnx/1"}


def model(**changes: Any) -> dict[str, Any]:
    return {**MODEL, **changes}


CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    # Schema: the message names the key and the allowed values.
    "unknown accelerator": (
        {"models": [model(accelerator="tpu")]},
        ["/models/0/accelerator", "'cpu', 'gpu'"],
    ),
    "unknown format": (
        {"models": [model(format="tensorflow")]},
        ["/models/0/format", "'onnx', 'torchscript', 'torch_export', 'pytorch'"],
    ),
    "negative replicas": (
        {"models": [model(replicas=-1)]},
        ["/models/0/replicas", "minimum: got -1, want 1"],
    ),
    "missing storageUri": (
        {"models": [{"name": "digits-onnx", "format": "onnx"}]},
        ["/models/0", "missing property 'storageUri'"],
    ),
    "storageUri without a scheme": (
        {"models": [model(storageUri="/models/digits-onnx/1")]},
        ["/models/0/storageUri", "does not match pattern"],
    ),
    "name that is not a DNS label": (
        {"models": [model(name="Digits_ONNX")]},
        ["/models/0/name", "does not match pattern"],
    ),
    "misspelt model key": (
        {"models": [model(acelerator="gpu")]},
        ["/models/0", "'acelerator' not allowed"],
    ),
    "unknown deployment mode": (
        {"deploymentMode": "Serverless"},
        ["/deploymentMode", "'Standard', 'Knative'"],
    ),
    "canary above 100": (
        {"deploymentMode": "Knative", "models": [model(canaryTrafficPercent=120)]},
        ["/models/0/canaryTrafficPercent", "maximum"],
    ),
    # Template rules the schema cannot state.
    "minReplicas above maxReplicas": (
        {"models": [model(autoscaling={"enabled": True, "minReplicas": 5, "maxReplicas": 2})]},
        [
            "models[digits-onnx]: autoscaling.minReplicas (5) must not exceed "
            "autoscaling.maxReplicas (2)"
        ],
    ),
    "scale to zero outside Knative": (
        {"models": [model(autoscaling={"enabled": True, "minReplicas": 0})]},
        [
            "models[digits-onnx]: autoscaling.minReplicas 0 (scale to zero) "
            "needs deploymentMode Knative"
        ],
    ),
    "KEDA outside Standard": (
        {
            "deploymentMode": "Knative",
            "models": [model(autoscaling={"enabled": True, "class": "keda"})],
        },
        ['autoscaling.class "keda" applies to deploymentMode Standard only'],
    ),
    "KEDA with a scale metric": (
        {"models": [model(autoscaling={"enabled": True, "class": "keda", "metric": "cpu"})]},
        ["autoscaling.metric must be empty with class keda"],
    ),
    "concurrency metric in Standard mode": (
        {"models": [model(autoscaling={"enabled": True, "metric": "concurrency"})]},
        ['autoscaling.metric "concurrency" is not an HPA metric'],
    ),
    "cpu metric in Knative mode": (
        {
            "deploymentMode": "Knative",
            "models": [model(autoscaling={"enabled": True, "metric": "cpu"})],
        },
        ['autoscaling.metric "cpu" is not a KPA metric'],
    ),
    "canary outside Knative": (
        {"models": [model(canaryTrafficPercent=10)]},
        ["models[digits-onnx]: canaryTrafficPercent needs deploymentMode Knative"],
    ),
    "torchserve with an ONNX model": (
        {"models": [model(runtime="torchserve")]},
        ["runtime torchserve serves TorchServe .mar archives"],
    ),
    "the same model twice": (
        {"models": [model(), model(storageUri="pvc://store/digits-onnx/2")]},
        ["models[digits-onnx]: the name is used twice"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_values_are_refused_with_a_clear_message(case: str) -> None:
    values, expected = CASES[case]
    with pytest.raises(helm.HelmError) as refused:
        install_dry_run(values)
    message = str(refused.value)
    for fragment in expected:
        assert fragment in message, message


def test_the_good_model_renders() -> None:
    # The cases above differ from this one by one key, so each refusal is
    # caused by that key.
    manifest = install_dry_run({"models": [model()]})["manifest"]
    assert "name: digits-onnx" in str(manifest)
