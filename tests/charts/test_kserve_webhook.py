"""What the chart renders, KServe's admission webhook accepts and its autoscalers read
as meant; what KServe would refuse or ignore, the chart refuses at install.

The webhook and the KEDA reconciler are ported in kserve_rules (KServe v0.20.0
pkg/apis/serving/v1beta1/inference_service_validation.go validateInferenceService
and validateAutoScalingCompExtension; pkg/apis/serving/v1beta1/component.go
ComponentExtensionSpec.Validate; reconcilers/keda/keda_reconciler.go getKedaMetrics).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import helm_python as helm
import kserve_rules
import pytest
from chart_support import Manifest, by_kind, named, parse, render

MODEL = {"name": "digits-onnx", "format": "onnx", "storageUri": "pvc://store/digits-onnx/1"}


def isvcs(values: dict[str, Any]) -> list[Manifest]:
    return by_kind(parse(render(values)), "InferenceService")


def test_every_example_passes_the_webhook(rendered: dict[str, list[Manifest]]) -> None:
    refused = {
        f"{example}/{isvc['metadata']['name']}": errors
        for example, objects in rendered.items()
        for isvc in by_kind(objects, "InferenceService")
        if (errors := kserve_rules.webhook_errors(isvc))
    }
    assert not refused, refused


def test_keda_threshold_is_the_target_per_replica(rendered: dict[str, list[Manifest]]) -> None:
    """KServe hands KEDA only target.value (getKedaMetrics): the threshold must be
    the target the values asked for, not KServe's fallback "0"."""
    objects = rendered["keda"]
    thresholds = {
        name: [t["metadata"]["threshold"] for t in kserve_rules.keda_triggers(isvc)]
        for name in ("digits-onnx", "wine-onnx")
        if (isvc := named(objects, "InferenceService", name))
    }
    assert thresholds == {"digits-onnx": ["30"], "wine-onnx": ["50"]}


def test_the_port_refuses_the_averagevalue_target() -> None:
    """The shape the chart used to render: refused by the webhook, and even if
    admitted, KEDA would get threshold "0". Shows the port sees the difference."""
    (isvc,) = isvcs({"autoscaling": {"enabled": True, "class": "keda"}, "models": [MODEL]})
    metric = isvc["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]
    metric["target"] = {"type": "AverageValue", "averageValue": "20"}
    assert kserve_rules.webhook_errors(isvc) == ["the target threshold value should not be empty"]
    assert kserve_rules.keda_triggers(isvc)[0]["metadata"]["threshold"] == "0"


MODES = ("Standard", "Knative")
CLASSES = ("", "hpa", "keda")
METRICS = ("", "cpu", "memory", "concurrency", "rps")
TARGETS = (None, 101)


def test_every_autoscaling_combination_renders_what_kserve_accepts() -> None:
    """Across modes, classes, metrics and targets, the chart either refuses with a
    message naming the model, or renders an InferenceService the webhook admits."""
    accepted = refused = 0
    for mode, klass, metric, target in itertools.product(MODES, CLASSES, METRICS, TARGETS):
        scaling = {"enabled": True, "class": klass, "metric": metric, "target": target}
        values = {"deploymentMode": mode, "models": [{**MODEL, "autoscaling": scaling}]}
        try:
            (isvc,) = isvcs(values)
        except helm.HelmError as err:
            assert "models[digits-onnx]: autoscaling." in str(err), (values, str(err))
            refused += 1
            continue
        assert kserve_rules.webhook_errors(isvc) == [], values
        accepted += 1
    # Both outcomes happen, so neither branch is vacuous.
    assert accepted >= 10 and refused >= 10, (accepted, refused)


def _patch(path: str, value: Any) -> Callable[[Manifest], None]:
    def apply(isvc: Manifest) -> None:
        node = isvc["spec"]["predictor"]
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value

    return apply


# (values the chart refuses, values it accepts that differ only there, the
# change that turns the accepted InferenceService into what the refused values
# would have meant, what KServe's webhook says about it).
REFUSALS: dict[str, tuple[dict[str, Any], dict[str, Any], Callable[[Manifest], None], str]] = {
    "cpu target above 100": (
        {"metric": "cpu", "target": 150},
        {"metric": "cpu", "target": 100},
        _patch("scaleTarget", 150),
        "the target utilization percentage should be a [1-100] integer",
    ),
    "memory target above 100": (
        {"metric": "memory", "target": 150},
        {"metric": "memory", "target": 100},
        _patch("scaleTarget", 150),
        "the target utilization percentage should be a [1-100] integer",
    ),
    "scaleMetric with KEDA": (
        {"class": "keda", "metric": "cpu"},
        {"class": "keda"},
        _patch("scaleMetric", "cpu"),
        "ScaleMetric is not supported for KEDA",
    ),
    "a KPA metric for the HPA": (
        {"metric": "concurrency"},
        {"metric": "cpu"},
        _patch("scaleMetric", "concurrency"),
        "[concurrency] is not a supported metric",
    ),
    "minReplicas above maxReplicas": (
        {"minReplicas": 4, "maxReplicas": 2},
        {"minReplicas": 2, "maxReplicas": 2},
        _patch("minReplicas", 4),
        "'MinReplicas' cannot be greater than MaxReplicas",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_the_chart_refuses_what_the_webhook_refuses(case: str) -> None:
    refused, accepted, patch, webhook_says = REFUSALS[case]

    def values(scaling: dict[str, Any]) -> dict[str, Any]:
        return {"models": [{**MODEL, "autoscaling": {"enabled": True, **scaling}}]}

    with pytest.raises(helm.HelmError):
        isvcs(values(refused))
    (isvc,) = isvcs(values(accepted))
    assert kserve_rules.webhook_errors(isvc) == []
    would_be = copy.deepcopy(isvc)
    patch(would_be)
    assert kserve_rules.webhook_errors(would_be) == [webhook_says]


def test_knative_only_settings_are_refused_outside_knative() -> None:
    """The webhook admits these in Standard mode, where nothing acts on them:
    containerConcurrency is the queue-proxy's (Knative) limit, canaryTrafficPercent
    is read by the Knative reconciler only (reconcilers/knative/ksvc_reconciler.go),
    and KServe's HPA raises minReplicas 0 to 1 (reconcilers/hpa/hpa_reconciler.go
    createHPA). The chart refuses them rather than let them be silently ignored."""
    standard = {"deploymentMode": "Standard"}
    for model in (
        {**MODEL, "autoscaling": {"enabled": True, "containerConcurrency": 4}},
        {**MODEL, "canaryTrafficPercent": 10},
        {**MODEL, "autoscaling": {"enabled": True, "minReplicas": 0}},
    ):
        with pytest.raises(helm.HelmError):
            isvcs({**standard, "models": [model]})
    (isvc,) = isvcs({**standard, "models": [{**MODEL, "autoscaling": {"enabled": True}}]})
    hpa = kserve_rules.webhook_errors
    for key, value in (("containerConcurrency", 4), ("canaryTrafficPercent", 10)):
        ignored = copy.deepcopy(isvc)
        ignored["spec"]["predictor"][key] = value
        assert hpa(ignored) == [], f"the webhook admits {key} in Standard mode"
