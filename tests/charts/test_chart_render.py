"""The chart lints, packages and renders every example into objects that the
Kubernetes and KServe schemas accept, with the behaviour the values ask for."""

from __future__ import annotations

import copy
from pathlib import Path

import helm_python as helm
import pytest
from chart_support import (
    CHART_DIR,
    KUBE_VERSION,
    NAMESPACE,
    Manifest,
    by_kind,
    examples,
    load_values,
    named,
    parse,
    render,
    runtime_for,
    validation_errors,
)

EXAMPLE_NAMES = [p.stem for p in examples()]
EXPECTED_EXAMPLES = {
    "cpu",
    "gpu",
    "serverless",
    "raw-hpa",
    "keda",
    "canary",
    "torchserve",
    "pvc-model-store",
    "default-runtime",
    "retraining",
}
RUNTIME_KINDS = ("ServingRuntime", "ClusterServingRuntime")


def runtimes(objects: list[Manifest]) -> list[Manifest]:
    return [o for o in objects if o["kind"] in RUNTIME_KINDS]


def predictor_container(runtime: Manifest) -> dict:
    (container,) = runtime["spec"]["containers"]
    return container


def policy_ports_by_namespace(policy: Manifest) -> dict[str, set[int]]:
    """Namespace name -> the ports a NetworkPolicy lets pods of it reach."""
    allowed: dict[str, set[int]] = {}
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        for peer in rule["from"]:
            labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
            name = labels.get("kubernetes.io/metadata.name")
            if name:
                allowed.setdefault(name, set()).update(ports)
    return allowed


def test_every_example_is_there() -> None:
    assert set(EXAMPLE_NAMES) >= EXPECTED_EXAMPLES


@pytest.mark.parametrize("values_file", [None, *examples()], ids=["defaults", *EXAMPLE_NAMES])
def test_lint_is_clean(values_file: Path | None) -> None:
    values = load_values(values_file) if values_file else None
    report = helm.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_package_renders_like_the_folder(tmp_path: Path) -> None:
    archive = Path(helm.package(CHART_DIR, destination=tmp_path))
    assert archive.name == "modelplane-0.1.0.tgz"
    values = load_values(CHART_DIR / "examples" / "pvc-model-store.yaml")
    with helm.Chart.load(archive) as packaged, helm.Chart.load(CHART_DIR) as folder:
        assert packaged.schema is not None
        # Examples ship in the package so `helm pull` users get them too.
        assert any(f["name"].startswith("examples/") for f in packaged.files)
        kwargs = {"name": "modelplane", "namespace": NAMESPACE, "is_install": True}
        assert packaged.render(values, **kwargs) == folder.render(values, **kwargs)


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_objects_match_kubernetes_and_kserve_schemas(
    example: str, rendered: dict[str, list[Manifest]], crds_dir: Path
) -> None:
    objects = rendered[example]
    assert objects, f"{example} rendered nothing"
    errors = [e for obj in objects for e in validation_errors(obj, crds_dir)]
    assert not errors, "\n".join(errors)


def test_default_values_declare_only_the_runtimes_and_policy(crds_dir: Path) -> None:
    objects = parse(render())
    assert {o["kind"] for o in objects} == {"ServingRuntime", "NetworkPolicy"}
    objects = by_kind(objects, "ServingRuntime")
    assert sorted(o["metadata"]["name"] for o in objects) == [
        "modelplane-onnx",
        "modelplane-onnx-gpu",
        "modelplane-torch",
        "modelplane-torch-gpu",
    ]
    assert not [e for o in objects for e in validation_errors(o, crds_dir)]


def test_runtimes_declare_the_predictor_contract(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["cpu"]
    onnx = named(objects, "ServingRuntime", "modelplane-onnx")
    torch = named(objects, "ServingRuntime", "modelplane-torch")
    # Versioned like KServe's own runtimes (onnx "1", pytorch "1"), so an
    # InferenceService that pins modelFormat.version matches; never auto-selected.
    assert onnx["spec"]["supportedModelFormats"] == [
        {"name": "onnx", "version": "1", "autoSelect": False}
    ]
    assert torch["spec"]["supportedModelFormats"] == [
        {"name": "pytorch", "version": "1", "autoSelect": False},
        {"name": "pytorch", "version": "2", "autoSelect": False},
    ]
    for runtime in (onnx, torch):
        spec = runtime["spec"]
        assert spec["protocolVersions"] == ["v2", "grpc-v2"]
        assert spec["annotations"] == {
            "prometheus.kserve.io/port": "8080",
            "prometheus.kserve.io/path": "/metrics",
        }
        container = predictor_container(runtime)
        assert container["name"] == "kserve-container"
        assert container["image"] == "modelplane/predictor:0.1.0"
        assert container["command"] == ["modelplane", "serve"]
        assert container["args"][:5] == [
            "--model_name={{.Name}}",
            "--model_dir=/mnt/models",
            "--http_port=8080",
            "--grpc_port=8081",
            "--grace_period=30",
        ]
        assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
            ("http", 8080),
            ("grpc", 8081),
        ]
        assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_pods_are_hardened(rendered: dict[str, list[Manifest]]) -> None:
    for example, objects in rendered.items():
        for runtime in runtimes(objects):
            container = predictor_container(runtime)
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, example
            assert ctx["allowPrivilegeEscalation"] is False, example
            assert ctx["runAsNonRoot"] is True, example
            assert ctx["capabilities"] == {"drop": ["ALL"]}, example
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, example
            volumes = {v["name"]: v for v in runtime["spec"]["volumes"]}
            scratch = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert scratch and "emptyDir" in volumes[scratch[0]["name"]], example
        for isvc in by_kind(objects, "InferenceService"):
            predictor = isvc["spec"]["predictor"]
            assert predictor["securityContext"]["runAsNonRoot"] is True
            # Above 10000, which node users may own; the images run as 10001.
            assert predictor["securityContext"]["runAsUser"] == 10001
            assert predictor["securityContext"]["runAsGroup"] == 10001
            assert predictor["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert predictor["automountServiceAccountToken"] is False


def test_every_model_waits_for_its_own_readiness(rendered: dict[str, list[Manifest]]) -> None:
    for example, objects in rendered.items():
        for isvc in by_kind(objects, "InferenceService"):
            model = isvc["spec"]["predictor"]["model"]
            served = (
                "digits" if model["runtime"] == "kserve-torchserve" else isvc["metadata"]["name"]
            )
            assert model["readinessProbe"]["httpGet"] == {
                "path": f"/v2/models/{served}/ready",
                "port": 8080,
            }, example
            assert model["protocolVersion"] == "v2"
            mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
            assert mode == load_values(CHART_DIR / "examples" / f"{example}.yaml")["deploymentMode"]
            if model["runtime"] != "kserve-torchserve":
                runtime = runtime_for(objects, isvc)
                formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
                assert model["modelFormat"]["name"] in formats


def test_fixed_replicas_without_autoscaling(rendered: dict[str, list[Manifest]]) -> None:
    isvc = named(rendered["cpu"], "InferenceService", "digits-onnx")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"
    assert (isvc["spec"]["predictor"]["minReplicas"], isvc["spec"]["predictor"]["maxReplicas"]) == (
        2,
        2,
    )
    wine = named(rendered["cpu"], "InferenceService", "wine-onnx")
    assert wine["spec"]["predictor"]["model"]["resources"]["limits"] == {
        "cpu": "1",
        "memory": "512Mi",
    }
    account = named(rendered["cpu"], "ServiceAccount", "modelplane-predictor")
    assert account["secrets"] == [{"name": "modelplane-s3"}]
    assert wine["spec"]["predictor"]["serviceAccountName"] == "modelplane-predictor"


def test_gpu_models_use_the_gpu_image_and_nodes(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["gpu"]
    assert not by_kind(objects, "ServingRuntime")
    for isvc in by_kind(objects, "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        resources = predictor["model"]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == "1"
        assert resources["requests"]["nvidia.com/gpu"] == "1"
        assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert predictor["tolerations"][0]["key"] == "nvidia.com/gpu"
        runtime = runtime_for(objects, isvc)
        assert runtime["kind"] == "ClusterServingRuntime"
        assert "namespace" not in runtime["metadata"]
        assert runtime["metadata"]["name"].endswith("-gpu")
        assert predictor_container(runtime)["image"] == "modelplane/predictor-gpu:0.1.0"
    # No runtime is chosen by format unless runtimes.autoSelect says so.
    for runtime in runtimes(objects):
        assert not any(f["autoSelect"] for f in runtime["spec"]["supportedModelFormats"])


def test_knative_mode_scales_to_zero_on_one_port(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["serverless"]
    for runtime in runtimes(objects):
        ports = predictor_container(runtime)["ports"]
        assert [(p["name"], p["containerPort"]) for p in ports] == [("http1", 8080)]
    digits = named(objects, "InferenceService", "digits-onnx")
    wine = named(objects, "InferenceService", "wine-torch")
    for isvc in (digits, wine):
        assert "serving.kserve.io/autoscalerClass" not in isvc["metadata"]["annotations"]
    p = digits["spec"]["predictor"]
    assert (p["minReplicas"], p["maxReplicas"], p["scaleMetric"], p["scaleTarget"]) == (
        0,
        5,
        "concurrency",
        8,
    )
    assert p["containerConcurrency"] == 16
    p = wine["spec"]["predictor"]
    assert (p["minReplicas"], p["scaleMetric"], p["scaleTarget"]) == (1, "rps", 100)
    (policy,) = by_kind(objects, "NetworkPolicy")
    allowed = policy_ports_by_namespace(policy)
    # The gateway reaches the queue-proxy; the activator and autoscaler too.
    assert {8012, 8013} <= allowed["istio-system"]
    assert {8012, 8013, 9090} <= allowed["knative-serving"]
    assert {8080, 9091} <= allowed["monitoring"]


def test_standard_mode_scales_with_hpa(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["raw-hpa"]
    digits = named(objects, "InferenceService", "digits-onnx")
    torch = named(objects, "InferenceService", "digits-torch")
    for isvc in (digits, torch):
        assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
        # KServe v0.20.0 never reads scaleMetricType: its HPA makes cpu and
        # memory scaleTargets averageUtilization percentages
        # (reconcilers/hpa/hpa_reconciler.go getHPAMetrics), so none is rendered.
        assert "scaleMetricType" not in isvc["spec"]["predictor"]
    assert (
        digits["spec"]["predictor"]["scaleMetric"],
        digits["spec"]["predictor"]["scaleTarget"],
    ) == ("cpu", 70)
    assert (
        torch["spec"]["predictor"]["scaleMetric"],
        torch["spec"]["predictor"]["maxReplicas"],
    ) == ("memory", 2)


def test_keda_scales_on_the_request_rate(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["keda"]
    digits = named(objects, "InferenceService", "digits-onnx")
    assert digits["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    predictor = digits["spec"]["predictor"]
    # KServe rejects scaleMetric with KEDA: the trigger is an External metric.
    assert "scaleMetric" not in predictor and "scaleTarget" not in predictor
    (metric,) = predictor["autoScaling"]["metrics"]
    assert metric["type"] == "External"
    external = metric["external"]
    assert external["metric"]["backend"] == "prometheus"
    assert external["metric"]["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    assert external["metric"]["query"] == (
        f'sum(rate(modelplane_requests_total{{namespace="{NAMESPACE}",model_name="digits-onnx"}}[1m]))'
    )
    # KServe's webhook and KEDA reconciler read target.value only.
    assert external["target"] == {"type": "Value", "value": "30"}
    wine = named(objects, "InferenceService", "wine-onnx")
    query = wine["spec"]["predictor"]["autoScaling"]["metrics"][0]["external"]["metric"]["query"]
    assert 'status="200"' in query


def test_canary_splits_traffic(rendered: dict[str, list[Manifest]]) -> None:
    (isvc,) = by_kind(rendered["canary"], "InferenceService")
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["spec"]["predictor"]["model"]["storageUri"].endswith("/digits-onnx/2")
    assert isvc["metadata"]["labels"]["modelplane.io/model-version"] == "2"


def test_torchserve_model_uses_kserves_runtime(rendered: dict[str, list[Manifest]]) -> None:
    (isvc,) = by_kind(rendered["torchserve"], "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == "kserve-torchserve"
    assert model["modelFormat"] == {"name": "pytorch"}
    # The runtime is not ours, so the hardening travels with the model.
    assert model["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in model["volumeMounts"]} == {"/tmp"}
    assert model["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_pvc_example_creates_the_claim_it_reads(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["pvc-model-store"]
    (claim,) = by_kind(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    uris = [
        i["spec"]["predictor"]["model"]["storageUri"] for i in by_kind(objects, "InferenceService")
    ]
    assert sorted(uris) == [
        f"pvc://{claim['metadata']['name']}/{m}/1"
        for m in ("digits-onnx", "digits-torch", "wine-onnx", "wine-torch")
    ]
    (policy,) = by_kind(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        by_kind(objects, "InferenceService")[0]["spec"]["predictor"]["labels"].items()
    )


def test_runtimes_can_be_left_to_another_release() -> None:
    values = load_values(CHART_DIR / "examples" / "cpu.yaml")
    values["runtimes"] = {"create": False}
    objects = parse(render(values))
    assert not runtimes(objects)
    assert len(by_kind(objects, "InferenceService")) == 4


def test_notes_tell_how_to_call_each_model(releases: dict[str, dict[str, object]]) -> None:
    notes = str(releases["cpu"]["notes"])
    for model in ("digits-onnx", "digits-torch", "wine-onnx", "wine-torch"):
        assert f"curl -s localhost:8080/v2/models/{model}/infer" in notes
        assert f"port-forward service/{model}-predictor 8080:80 8081:8081" in notes
    assert "inference.GRPCInferenceService/ModelReady" in notes
    torchserve = str(releases["torchserve"]["notes"])
    assert "/v2/models/digits/ready" in torchserve


def test_kserve_validation_rejects_what_the_api_server_would_drop(
    rendered: dict[str, list[Manifest]], crds_dir: Path
) -> None:
    # A misspelt field would be pruned silently by the API server, and an
    # unknown scaleMetric refused: both must fail here, or the checks above
    # prove nothing.
    isvc = copy.deepcopy(named(rendered["raw-hpa"], "InferenceService", "digits-onnx"))
    isvc["spec"]["predictor"]["minReplica"] = 1
    isvc["spec"]["predictor"]["scaleMetric"] = "qps"
    errors = "\n".join(validation_errors(isvc, crds_dir))
    assert "'minReplica' was unexpected" in errors
    assert "'qps' is not one of" in errors


def test_monitoring_block_is_left_open_for_its_templates() -> None:
    values = {"monitoring": {"enabled": False, "serviceMonitor": {"interval": "15s"}}}
    assert parse(render(values))
