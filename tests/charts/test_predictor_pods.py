"""The predictor pods KServe makes from the chart: ports and Service, probes,
shutdown, image pinning, and the restricted Pod Security Standard.

Pods and Services are built with the ports in kserve_rules (KServe v0.20.0:
components/predictor.go, utils.go MergeRuntimeContainers, pkg/utils/
container_merge.go MergeContainerWithPatch, reconcilers/service/
service_reconciler.go createDefaultSvc).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kserve_rules
import pytest
from chart_support import (
    EXAMPLES_DIR,
    Manifest,
    by_kind,
    install_dry_run,
    load_values,
    named,
    parse,
    pod_templates,
    predictor_pods,
    render,
    restricted_violations,
    validation_errors,
)

MODEL = {"name": "digits-onnx", "format": "onnx", "storageUri": "pvc://store/digits-onnx/1"}
HANDLERS = ("httpGet", "grpc", "tcpSocket", "exec")


def pods_of(values: dict[str, Any]) -> list[Manifest]:
    return predictor_pods(parse(render(values)))


def test_grpc_gets_an_h2c_port_on_the_standard_mode_service(
    rendered: dict[str, list[Manifest]],
) -> None:
    """KServe's Service for a predictor maps the first container port to 80 and
    adds the others under their own number, h2c when named grpc/h2c; so
    <model>-predictor:80 is HTTP and :8081 gRPC (service_reconciler.go
    createDefaultSvc, getAppProtocol)."""
    for pod in predictor_pods(rendered["pvc-model-store"]):
        (container,) = pod["spec"]["containers"]
        assert kserve_rules.predictor_service_ports(container) == [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {
                "name": "grpc",
                "port": 8081,
                "targetPort": 8081,
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            },
        ]


def test_every_probe_has_one_handler(rendered: dict[str, list[Manifest]]) -> None:
    """KServe merges a model's container into the runtime's with a strategic
    merge, so a probe keeps the runtime's handler next to the model's; the
    kubelet refuses a probe with two. Checked on the merged containers."""
    values = [*rendered.values(), parse(render(grpc_values()))]
    for objects in values:
        for pod in predictor_pods(objects):
            (container,) = pod["spec"]["containers"]
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    handlers = [h for h in HANDLERS if h in container[probe]]
                    assert len(handlers) == 1, (pod["metadata"]["name"], probe, handlers)


def grpc_values() -> dict[str, Any]:
    values = load_values(EXAMPLES_DIR / "pvc-model-store.yaml")
    values["runtimes"] = {"probes": {"readinessProtocol": "grpc"}}
    values["models"].append(
        {
            "name": "digits-torchserve",
            "format": "pytorch",
            "runtime": "torchserve",
            "servedModelName": "digits",
            "storageUri": "pvc://modelplane-model-store/torchserve/digits",
        }
    )
    return values


def test_grpc_readiness_probes_ask_for_their_model(crds_dir: Path) -> None:
    objects = parse(render(grpc_values()))
    assert not [e for o in objects for e in validation_errors(o, crds_dir)]
    probes = {
        p["metadata"]["name"]: p["spec"]["containers"][0]["readinessProbe"]
        for p in predictor_pods(objects)
    }
    for name in ("digits-onnx", "wine-torch"):
        probe = probes[f"{name}-predictor"]
        assert probe["grpc"] == {"port": 8081, "service": name}
        assert probe["periodSeconds"] == 5
    # TorchServe's runtime is KServe's: its model keeps the HTTP check.
    assert probes["digits-torchserve-predictor"]["httpGet"]["path"] == "/v2/models/digits/ready"
    # The default stays HTTP.
    (pod,) = pods_of({"models": [MODEL]})
    assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"] == {
        "path": "/v2/models/digits-onnx/ready",
        "port": 8080,
    }


def test_shutdown_gives_the_drain_its_full_time() -> None:
    """preStop sleeps while the endpoints drop the pod, then SIGTERM starts the
    drain (--grace_period); the kubelet's deadline counts both, so it must be
    longer than their sum."""
    for values in ({"models": [MODEL]}, grpc_values()):
        for pod in pods_of(values):
            (container,) = pod["spec"]["containers"]
            pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            if pod["metadata"]["name"] == "digits-torchserve-predictor":
                drain = 0
            else:
                flags = [a for a in container["args"] if a.startswith("--grace_period=")]
                drain = int(flags[-1].split("=", 1)[1])
                assert drain == 30
            assert pod["spec"]["terminationGracePeriodSeconds"] > pre_stop + drain
    (pod,) = pods_of(
        {
            "runtimes": {
                "shutdown": {"preStopSleepSeconds": 10, "drainSeconds": 60, "marginSeconds": 3}
            },
            "models": [MODEL],
        }
    )
    assert pod["spec"]["terminationGracePeriodSeconds"] == 73
    assert "--grace_period=60" in pod["spec"]["containers"][0]["args"]


def test_knative_mode_renders_no_lifecycle_or_grace_period(
    rendered: dict[str, list[Manifest]],
) -> None:
    """Knative refuses containers[].lifecycle and terminationGracePeriodSeconds
    (knative.dev/serving pkg/apis/serving/fieldmask.go ContainerMask, PodSpecMask;
    knative/serving#16463 on 1.21.1); its queue-proxy drains instead."""
    for example in ("serverless", "canary"):
        for pod in predictor_pods(rendered[example]):
            assert "terminationGracePeriodSeconds" not in pod["spec"]
            assert "lifecycle" not in pod["spec"]["containers"][0]


DIGEST = "sha256:" + "ab" * 32


def test_a_digest_pins_the_image() -> None:
    values = {
        "image": {
            "cpu": {"repository": "registry.local/mp", "tag": "1.0", "digest": DIGEST},
            "gpu": {"repository": "registry.local/mp-gpu", "digest": DIGEST},
        },
        "models": [MODEL, {**MODEL, "name": "digits-gpu", "accelerator": "gpu"}],
    }
    images = {p["spec"]["containers"][0]["image"] for p in pods_of(values)}
    assert images == {f"registry.local/mp@{DIGEST}", f"registry.local/mp-gpu@{DIGEST}"}
    (pod,) = pods_of({"models": [MODEL]})
    assert pod["spec"]["containers"][0]["image"] == "modelplane/predictor:0.1.0"


def test_every_pod_meets_the_restricted_pod_security_standard(
    rendered: dict[str, list[Manifest]],
) -> None:
    """The predictor pods (as KServe builds them; its storage initializer and
    Knative's queue-proxy are added later by their webhooks) and the retraining
    job's pod."""
    checked = 0
    for example, objects in [*rendered.items(), ("grpc", parse(render(grpc_values())))]:
        for name, spec in pod_templates(objects):
            assert restricted_violations(spec) == [], (example, name)
            checked += 1
    assert checked >= 20


def test_the_restricted_check_catches_a_violation() -> None:
    (pod,) = pods_of({"models": [MODEL], "securityContext": {"capabilities": {"drop": []}}})
    assert restricted_violations(pod["spec"]) == [
        "container kserve-container: capabilities must drop ALL"
    ]


def test_network_policy_is_on_and_opens_only_what_is_needed() -> None:
    objects = parse(render({"models": [MODEL]}))
    (policy,) = by_kind(objects, "NetworkPolicy")
    rules = policy["spec"]["ingress"]
    by_source = {}
    for rule in rules:
        for peer in rule["from"]:
            key = (
                peer.get("namespaceSelector", {})
                .get("matchLabels", {})
                .get("kubernetes.io/metadata.name", "same namespace")
            )
            by_source.setdefault(key, set()).update(p["port"] for p in rule["ports"])
    assert by_source == {
        "same namespace": {8080, 8081},
        "istio-system": {8080, 8081},
        "monitoring": {8080, 8082},
    }
    (pod,) = predictor_pods(objects)
    assert kserve_rules.selector_matches(policy["spec"]["podSelector"], pod["metadata"]["labels"])
    closed = parse(
        render(
            {
                "networkPolicy": {
                    "allowSameNamespace": False,
                    "ingressNamespaces": [],
                    "prometheusNamespaces": [],
                },
                "models": [MODEL],
            }
        )
    )
    assert named(closed, "NetworkPolicy", "modelplane-predictors")["spec"]["ingress"] == []


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_model_names_keep_their_v2_spelling(mode: str) -> None:
    """A Triton-style name becomes a DNS-safe InferenceService name, and the
    server is told the original one (the last --model_name wins: KServe appends
    the model's args to the runtime's)."""
    objects = parse(
        render(
            {
                "deploymentMode": mode,
                "models": [{**MODEL, "name": "densenet_onnx.v2"}],
            }
        )
    )
    (isvc,) = by_kind(objects, "InferenceService")
    assert isvc["metadata"]["name"] == "densenet-onnx-v2"
    assert kserve_rules.webhook_errors(isvc) == []
    (pod,) = predictor_pods(objects)
    args = pod["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--model_name=")] == [
        "--model_name=densenet-onnx-v2",
        "--model_name=densenet_onnx.v2",
    ]
    probe = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/v2/models/densenet_onnx.v2/ready"
    assert pod["metadata"]["labels"]["modelplane.io/model"] == "densenet_onnx.v2"
    notes = str(
        install_dry_run(
            {"deploymentMode": mode, "models": [{**MODEL, "name": "densenet_onnx.v2"}]}
        )["notes"]
    )
    assert "InferenceService densenet-onnx-v2" in notes
    assert "/v2/models/densenet_onnx.v2" in notes
