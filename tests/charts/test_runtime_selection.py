"""Which runtime KServe serves an InferenceService with, given the chart's runtimes
and KServe's own.

KServe's selection is ported in kserve_rules (v0.20.0
pkg/apis/serving/v1beta1/predictor_model.go GetSupportingRuntimes,
RuntimeSupportsModel, sortServingRuntimeList, sortSupportedRuntimeByPriority;
components/predictor.go reconcileModel; the defaulting of
inference_service_defaults.go setPredictorModelDefaults) and run over the
rendered runtimes plus the ClusterServingRuntimes KServe installs
(kserve_v0.20.0_runtimes.yaml), which predate the chart's.

The foreign InferenceServices are KServe's own examples: docs/samples/v1beta1/onnx/onnx.yaml
(style-sample), torchserve/v1/torchserve.yaml and torchserve/v2/mnist.yaml, and
the modelFormat form with a pinned version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kserve_rules
import pytest
import yaml
from chart_support import EXAMPLES_DIR, Manifest, by_kind, load_values, parse, render
from kserve_rules import Runtime

KSERVE_RUNTIMES = [
    Runtime.of(doc, created=0)
    for doc in yaml.safe_load_all(
        (Path(__file__).parent / "kserve_v0.20.0_runtimes.yaml").read_text()
    )
    if doc
]

# name -> spec.predictor of an InferenceService that names no runtime.
FOREIGN: dict[str, dict[str, Any]] = {
    # docs/samples/v1beta1/onnx/onnx.yaml: the old framework field; KServe's
    # defaulting makes it modelFormat onnx, protocolVersion v2.
    "style-sample": {"onnx": {"storageUri": "gs://kfserving-examples/models/onnx"}},
    # docs/samples/v1beta1/torchserve/v1/torchserve.yaml: no protocol (v1).
    "torchserve": {
        "pytorch": {"storageUri": "gs://kfserving-examples/models/torchserve/image_classifier/v1"}
    },
    # docs/samples/v1beta1/torchserve/v2/mnist.yaml
    "torchserve-mnist-v2": {
        "pytorch": {
            "protocolVersion": "v2",
            "storageUri": "gs://kfserving-examples/models/torchserve/image_classifier/v2",
        }
    },
    # The modelFormat form, version pinned as KServe's runtimes list it.
    "mnist-pinned": {
        "model": {
            "modelFormat": {"name": "pytorch", "version": "1"},
            "protocolVersion": "v2",
            "storageUri": "gs://kfserving-examples/models/torchserve/image_classifier/v2",
        }
    },
    "onnx-pinned": {
        "model": {
            "modelFormat": {"name": "onnx", "version": "1"},
            "protocolVersion": "v2",
            "storageUri": "gs://kfserving-examples/models/onnx",
        }
    },
    "onnx-unversioned": {
        "model": {
            "modelFormat": {"name": "onnx"},
            "protocolVersion": "grpc-v2",
            "storageUri": "gs://kfserving-examples/models/onnx",
        }
    },
}

# What KServe picks for them without modelplane: its own runtimes.
KSERVE_CHOICE = {
    "style-sample": "kserve-tritonserver",
    "torchserve": "kserve-torchserve",
    "torchserve-mnist-v2": "kserve-torchserve",
    "mnist-pinned": "kserve-torchserve",
    "onnx-pinned": "kserve-tritonserver",
    "onnx-unversioned": "kserve-tritonserver",
}


def chart_runtimes(objects: list[Manifest]) -> list[Runtime]:
    # Installed after KServe: newer, so they sort first among equals.
    return [
        Runtime.of(o, created=1)
        for o in objects
        if o["kind"] in ("ServingRuntime", "ClusterServingRuntime")
    ]


def choices(objects: list[Manifest]) -> dict[str, str | None]:
    runtimes = chart_runtimes(objects) + KSERVE_RUNTIMES
    return {name: kserve_rules.selected_runtime(p, runtimes) for name, p in FOREIGN.items()}


def test_the_port_reproduces_kserves_own_choices() -> None:
    """Without modelplane, KServe's examples land where KServe documents them."""
    chosen = {n: kserve_rules.selected_runtime(p, KSERVE_RUNTIMES) for n, p in FOREIGN.items()}
    assert chosen == KSERVE_CHOICE


@pytest.mark.parametrize("kind", ["ServingRuntime", "ClusterServingRuntime"])
def test_by_default_no_foreign_inferenceservice_lands_on_modelplane(kind: str) -> None:
    objects = parse(render({"runtimes": {"kind": kind}}))
    assert chart_runtimes(objects), "the runtimes are rendered"
    assert choices(objects) == KSERVE_CHOICE


@pytest.mark.parametrize("example", ["cpu", "gpu", "pvc-model-store", "serverless"])
def test_the_charts_models_land_on_the_runtime_they_name(example: str) -> None:
    objects = parse(render(load_values(EXAMPLES_DIR / f"{example}.yaml")))
    runtimes = chart_runtimes(objects) + KSERVE_RUNTIMES
    for isvc in by_kind(objects, "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        named = predictor["model"]["runtime"]
        assert kserve_rules.selected_runtime(predictor, runtimes) == named
        # A pinned version matches as well (RuntimeSupportsModel with the runtime set).
        pinned = {**predictor["model"], "modelFormat": {**predictor["model"]["modelFormat"]}}
        pinned["modelFormat"]["version"] = "1"
        assert kserve_rules.selected_runtime({"model": pinned}, runtimes) == named


def opted_in(kind: str) -> list[Manifest]:
    values = load_values(EXAMPLES_DIR / "default-runtime.yaml")
    values["runtimes"]["kind"] = kind
    return parse(render(values))


def test_opted_in_as_cluster_runtimes_modelplane_wins_by_priority() -> None:
    """As ClusterServingRuntimes with the documented priorities (onnx 2 above
    Triton's 1, pytorch 3 above TorchServe's 2), modelplane serves every v2
    onnx/pytorch example; the v1 TorchServe one stays on TorchServe (modelplane
    speaks v2 only)."""
    objects = opted_in("ClusterServingRuntime")
    assert choices(objects) == {
        "style-sample": "modelplane-onnx",
        "torchserve": "kserve-torchserve",
        "torchserve-mnist-v2": "modelplane-torch",
        "mnist-pinned": "modelplane-torch",
        "onnx-pinned": "modelplane-onnx",
        "onnx-unversioned": "modelplane-onnx",
    }
    # The priorities win on their own, not by install order: were modelplane's
    # runtimes the older ones, the choice would be the same.
    older = [Runtime(r.name, r.cluster, r.spec, created=-1) for r in chart_runtimes(objects)]
    runtimes = older + KSERVE_RUNTIMES
    assert kserve_rules.selected_runtime(FOREIGN["style-sample"], runtimes) == "modelplane-onnx"


def test_opted_in_the_priorities_pass_kserves_runtime_webhook() -> None:
    """KServe's webhook refuses a ClusterServingRuntime whose auto-selected format
    and version ties in priority with another one's (servingruntime_webhook.go
    validateServingRuntimePriority): the documented priorities do not; Triton's
    own priority for onnx would."""
    objects = opted_in("ClusterServingRuntime")
    for runtime in chart_runtimes(objects):
        assert kserve_rules.runtime_webhook_errors(runtime, KSERVE_RUNTIMES) == [], runtime.name
    values = load_values(EXAMPLES_DIR / "default-runtime.yaml")
    values["runtimes"]["formats"]["onnx"]["priority"] = 1
    tie = [r for r in chart_runtimes(parse(render(values))) if r.name == "modelplane-onnx"]
    assert kserve_rules.runtime_webhook_errors(tie[0], KSERVE_RUNTIMES) == [
        "same priority assigned for the model format onnx in the runtimes "
        "kserve-tritonserver and modelplane-onnx"
    ]


def test_opted_in_as_namespaced_runtimes_they_win_in_their_namespace() -> None:
    """A namespace's ServingRuntimes are listed before every ClusterServingRuntime,
    whatever the priorities: opted in, modelplane serves the namespace's v2
    onnx/pytorch InferenceServices (and the GPU variants still never auto-select)."""
    objects = opted_in("ServingRuntime")
    chosen = choices(objects)
    assert chosen["style-sample"] == "modelplane-onnx"
    assert chosen["torchserve-mnist-v2"] == "modelplane-torch"
    assert chosen["torchserve"] == "kserve-torchserve"
    assert not any(name.endswith("-gpu") for name in chosen.values() if name)
