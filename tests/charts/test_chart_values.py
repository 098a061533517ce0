"""Bad values are refused with a message that says what is wrong and where:
values.schema.json for what a schema can state, template `fail` for the rest."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_support import install_dry_run, parse, render

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
    "name with a character V2 names do not allow": (
        {"models": [model(name="digits/onnx")]},
        ["/models/0/name", "does not match pattern"],
    ),
    "inferenceServiceName that is not a DNS label": (
        {"models": [model(name="digits_onnx", inferenceServiceName="digits_onnx")]},
        ["/models/0/inferenceServiceName", "does not match pattern"],
    ),
    "image digest that is not a sha256": (
        {"image": {"cpu": {"repository": "r", "digest": "latest"}}},
        ["/image/cpu/digest", "does not match pattern"],
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
    # V2 names (densenet_onnx) become InferenceService names (densenet-onnx).
    "two model names that make one InferenceService name": (
        {"models": [model(name="densenet_onnx"), model(name="densenet.onnx")]},
        [
            "models[densenet_onnx] and models[densenet.onnx] both become InferenceService "
            '"densenet-onnx"',
            "set models[].inferenceServiceName on one of them",
        ],
    ),
    "a model name that makes no DNS label": (
        {"models": [model(name="3d_unet")]},
        ['models[3d_unet]: the InferenceService name "3d-unet"', "inferenceServiceName"],
    ),
    "a model name too long for an InferenceService": (
        {"models": [model(name="m" * 46)]},
        ["has 46 characters", "keep it to 45"],
    ),
    # KServe's webhook and controllers (tests/charts/test_kserve_webhook.py pairs
    # each of these with the webhook's own refusal).
    "cpu target above 100 percent": (
        {"models": [model(autoscaling={"enabled": True, "metric": "cpu", "target": 150})]},
        ["autoscaling.target 150: with metric cpu the target is a utilisation percentage"],
    ),
    "memory target above 100 percent": (
        {"models": [model(autoscaling={"enabled": True, "metric": "memory", "target": 101})]},
        ["autoscaling.target 101: with metric memory"],
    ),
    "containerConcurrency outside Knative": (
        {"models": [model(autoscaling={"enabled": True, "containerConcurrency": 4})]},
        ["autoscaling.containerConcurrency is enforced by Knative's queue-proxy"],
    ),
    "gRPC readiness probes in Knative mode": (
        {"deploymentMode": "Knative", "runtimes": {"probes": {"readinessProtocol": "grpc"}}},
        ["runtimes.probes.readinessProtocol grpc needs deploymentMode Standard"],
    ),
    "retraining without a tracking server": (
        {"retraining": {"enabled": True}},
        ["retraining.trackingUri: the MLflow tracking server"],
    ),
    # The predictor images have no MLflow: the job would fail at every run.
    "retraining on no image": (
        {
            "retraining": {
                "enabled": True,
                "trackingUri": "http://m:5000",
                "image": {"repository": ""},
            }
        },
        ["retraining.image.repository: an image with modelplane's mlflow extra", "--trainer"],
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


def test_the_retraining_job_runs_the_trainer_image_by_default() -> None:
    """The image scripts/build-images --trainer tags, at the chart's appVersion."""
    stream = render({"retraining": {"enabled": True, "trackingUri": "http://m:5000"}})
    (job,) = [m for m in parse(stream) if m["kind"] == "CronJob"]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    images = {c["image"] for c in pod.get("initContainers", []) + pod["containers"]}
    assert images == {"modelplane/trainer:0.1.0"}
