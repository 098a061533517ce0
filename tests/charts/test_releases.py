"""Two releases of the chart in one namespace share no object and watch only their
own pods, and a new chart version does not change the predictor pods.

Pods are built as KServe builds them (kserve_rules.predictor_pod: v0.20.0
components/predictor.go buildObjectMeta and buildPodSpec, utils.go
MergeRuntimeContainers and MergePodSpec, reconcilers/deployment/
deployment_reconciler.go createRawDefaultDeployment): an InferenceService's
labels and annotations reach its pods.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kserve_rules
import pytest
import yaml
from chart_support import CHART_DIR, Manifest, by_kind, parse, predictor_pods, render

NAMESPACE = "serving"


def everything(models: list[dict[str, Any]], kind: str = "ServingRuntime") -> dict[str, Any]:
    """Values that turn on every object the chart can make."""
    return {
        "runtimes": {"kind": kind},
        "serviceAccount": {"create": True},
        "modelStore": {"pvc": {"create": True}},
        "monitoring": {"enabled": True},
        "retraining": {"enabled": True, "trackingUri": "http://mlflow.mlflow.svc:5000"},
        "models": models,
    }


def model(name: str, claim: str = "store") -> dict[str, Any]:
    fmt = "onnx" if "onnx" in name else "torchscript"
    return {"name": name, "format": fmt, "storageUri": f"pvc://{claim}/{name}/1"}


RELEASES = {
    "modelplane": [model("digits-onnx"), model("wine-torch")],
    "team-b": [model("resnet50_onnx"), model("bert.torch")],
}


def release(name: str, values: dict[str, Any], chart: Path | None = None) -> list[Manifest]:
    return parse(render(values, release=name, namespace=NAMESPACE, chart=chart))


def identity(obj: Manifest) -> tuple[str, str | None, str]:
    return (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])


@pytest.mark.parametrize("kind", ["ServingRuntime", "ClusterServingRuntime"])
def test_two_releases_share_no_object(kind: str) -> None:
    a, b = (release(name, everything(models, kind)) for name, models in RELEASES.items())
    kinds = {o["kind"] for o in a}
    assert {"NetworkPolicy", "ServiceAccount", "PersistentVolumeClaim", "PodMonitor"} <= kinds
    assert {"PrometheusRule", "ConfigMap", "CronJob", kind, "InferenceService"} <= kinds
    common = {identity(o) for o in a} & {identity(o) for o in b}
    assert not common, sorted(common)


def monitored(monitor: Manifest, pods: list[Manifest]) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in pods
        if kserve_rules.selector_matches(monitor["spec"]["selector"], p["metadata"]["labels"])
    }


def test_each_release_watches_and_guards_only_its_own_pods() -> None:
    objects = {name: release(name, everything(models)) for name, models in RELEASES.items()}
    pods = {name: predictor_pods(objs) for name, objs in objects.items()}
    assert all(len(p) == 2 for p in pods.values())
    everyone = [p for ps in pods.values() for p in ps]
    for name, objs in objects.items():
        own = {p["metadata"]["name"] for p in pods[name]}
        for monitor in by_kind(objs, "PodMonitor"):
            assert monitored(monitor, everyone) == own, (name, monitor["metadata"]["name"])
        (policy,) = by_kind(objs, "NetworkPolicy")
        guarded = {
            p["metadata"]["name"]
            for p in everyone
            if kserve_rules.selector_matches(policy["spec"]["podSelector"], p["metadata"]["labels"])
        }
        assert guarded == own, name
        # Not the retraining job's pods: they serve nothing.
        (cron,) = by_kind(objs, "CronJob")
        job_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert not kserve_rules.selector_matches(policy["spec"]["podSelector"], job_labels)


def test_monitoring_objects_carry_the_standard_labels() -> None:
    objects = release("team-b", everything(RELEASES["team-b"]))
    for obj in objects:
        if obj["kind"] in ("PodMonitor", "PrometheusRule") or obj["kind"] == "ConfigMap":
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == "modelplane"
            assert labels["app.kubernetes.io/instance"] == "team-b"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/component"] == "monitoring"
            assert labels["helm.sh/chart"].startswith("modelplane-")


def bumped_chart(tmp_path: Path) -> Path:
    """A copy of the chart with a new version and appVersion."""
    copy = tmp_path / "modelplane"
    shutil.copytree(CHART_DIR, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    meta["version"], meta["appVersion"] = "9.9.9", "9.9.9"
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta))
    return copy


def test_a_new_chart_version_leaves_the_predictor_pods_alone(tmp_path: Path) -> None:
    """Pods carry no helm.sh/chart or app.kubernetes.io/version label (or
    annotation), so upgrading the chart with the same image and values rolls
    no predictor."""
    values = everything(RELEASES["modelplane"])
    values["image"] = {"cpu": {"repository": "modelplane/predictor", "tag": "1.0.0"}}
    before = predictor_pods(release("modelplane", values))
    after = predictor_pods(release("modelplane", values, chart=bumped_chart(tmp_path)))
    for pod in before:
        meta = {**pod["metadata"]["labels"], **pod["metadata"]["annotations"]}
        assert "helm.sh/chart" not in meta and "app.kubernetes.io/version" not in meta
    assert before == after


def test_name_overrides_rename_every_object() -> None:
    objects = release("x", everything(RELEASES["modelplane"]) | {"fullnameOverride": "serve"})
    owned = [o for o in objects if o["kind"] != "InferenceService"]
    names = [o["metadata"]["name"] for o in owned]
    assert names and all(n == "serve" or n.startswith("serve-") for n in names), names
    objects = release("x", everything(RELEASES["modelplane"]) | {"nameOverride": "mp"})
    names = {o["metadata"]["name"] for o in objects}
    assert {"x-mp-onnx", "x-mp-predictors", "x-mp-model-store", "x-mp-retraining"} <= names
    for pod in predictor_pods(objects):
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "mp"


def test_common_labels_reach_objects_and_pods() -> None:
    values = everything(RELEASES["modelplane"]) | {"commonLabels": {"team": "vision"}}
    objects = release("modelplane", values)
    assert all(o["metadata"]["labels"]["team"] == "vision" for o in objects)
    assert all(p["metadata"]["labels"]["team"] == "vision" for p in predictor_pods(objects))
