"""KServe v0.20.0's rules that decide what happens to the objects the chart renders.

Each function is a port of the named Go function, read in KServe's source at tag
v0.20.0, so the chart is tested against KServe's behaviour rather than against
our expectations. When KServe is upgraded, re-read the cited functions and
update the ports. Only the branches the chart can reach are ported; where a
port simplifies, the docstring says how.

Citations are paths in github.com/kserve/kserve at v0.20.0.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]

# --- the InferenceService admission webhook -------------------------------

# pkg/apis/serving/v1beta1/inference_service_validation.go IsvcNameFmt
ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# pkg/constants/constants.go AutoscalerAllowedClassList (kpa is a constant but not allowed)
AUTOSCALER_CLASSES = ("hpa", "external", "keda", "none")
# pkg/constants/constants.go AutoscalerAllowedHPAMetricsList, AutoscalerAllowedKPAMetricsList
HPA_METRICS = ("cpu", "memory")
KPA_METRICS = ("concurrency", "rps")
KNATIVE_HPA_CLASS = "hpa.autoscaling.knative.dev"


def _target_errors(target: dict[str, Any]) -> list[str]:
    """inference_service_validation.go validateScaleTarget."""
    kind = target.get("type")
    if kind == "Utilization":
        value = target.get("averageUtilization")
        if value is None:
            return ["the AverageUtilization type should be set"]
        if not 1 <= int(value) <= 100:
            return ["the target utilization percentage should be a [1-100] integer"]
    if kind == "AverageValue" and target.get("averageValue") is None:
        return ["the AverageValue type should be set"]
    if kind == "Value" and target.get("value") is None:
        return ["the Value type should be set"]
    return []


def _hpa_errors(ext: dict[str, Any]) -> list[str]:
    """inference_service_validation.go validateScalingHPACompExtension.

    The target check is ported with Go's precedence:
    `metric == MetricCPU && target < 1 || target > 100` refuses a target above
    100 for memory too (the HPA reconciler reads a memory scaleTarget as an
    averageUtilization percentage, reconcilers/hpa/hpa_reconciler.go getHPAMetrics).
    """
    metric = ext.get("scaleMetric", "cpu")
    if metric not in HPA_METRICS:
        return [f"[{metric}] is not a supported metric"]
    target = ext.get("scaleTarget")
    if target is not None:
        if (metric == "cpu" and target < 1) or target > 100:
            return ["the target utilization percentage should be a [1-100] integer"]
        if metric == "memory" and target < 1:
            return ["the target memory should be greater than 1 MiB"]
    for spec in (ext.get("autoScaling") or {}).get("metrics", []):
        if spec.get("type") != "Resource":
            return [
                f"invalid HPA metric source type with value [{spec.get('type')}],"
                "valid metric source types are Resource"
            ]
        if spec.get("resource") is None:
            return ["metricSpec.Resource is not set for resource metric source type"]
    return []


def _keda_errors(ext: dict[str, Any]) -> list[str]:
    """inference_service_validation.go validateScalingKedaCompExtension (Resource,
    External, PodMetric); the memory quantity comparison is left out."""
    if "scaleMetric" in ext:
        return ["ScaleMetric is not supported for KEDA"]
    for spec in (ext.get("autoScaling") or {}).get("metrics", []):
        kind = spec.get("type")
        if kind == "Resource":
            resource = spec.get("resource")
            if resource is None:
                return ["metricSpec.Resource is not set for resource metric source type"]
            target = resource.get("target", {})
            if resource.get("name") == "cpu" and target.get("type") != "Utilization":
                return ["the cpu target value type should be Utilization"]
            if resource.get("name") == "memory" and target.get("type") not in (
                "AverageValue",
                "Utilization",
            ):
                return ["the memory target value type should be AverageValue or Utilization"]
            if resource.get("name") not in ("cpu", "memory"):
                return [f"resource type {resource.get('name')} is not supported"]
            errors = _target_errors(target)
        elif kind in ("External", "PodMetric"):
            key = "external" if kind == "External" else "podmetric"
            source = spec.get(key)
            if source is None:
                return [f"metricSpec.{kind} is not set for {kind.lower()} metric source type"]
            if not source.get("metric", {}).get("query"):
                return ["the query should not be empty"]
            target = source.get("target", {})
            if target.get("value") is None:
                return ["the target threshold value should not be empty"]
            errors = _target_errors(target)
        else:
            return [
                f"unknown KEDA metric type with value [{kind}].Valid types are "
                "Resource,External,PodMetric"
            ]
        if errors:
            return errors
    return []


def _kpa_errors(ext: dict[str, Any]) -> list[str]:
    """inference_service_validation.go validateScalingKPACompExtension."""
    if "deploymentStrategy" in ext:
        return ["customizing deploymentStrategy is only supported for raw deployment mode"]
    metric = ext.get("scaleMetric", "concurrency")
    if metric not in KPA_METRICS:
        return [f"[{metric}] is not a supported metric"]
    target = ext.get("scaleTarget")
    if target is not None and metric == "rps" and target < 1:
        return ["the target for rps should be greater than 1"]
    return []


def _component_errors(ext: dict[str, Any]) -> list[str]:
    """pkg/apis/serving/v1beta1/component.go ComponentExtensionSpec.Validate:
    validateContainerConcurrency, validateReplicas (minReplicas defaults to 1)."""
    concurrency = ext.get("containerConcurrency")
    if concurrency is not None and concurrency < 0:
        return ["parallelism cannot be less than 0"]
    low, high = ext.get("minReplicas", 1), ext.get("maxReplicas", 0)
    if low < 0:
        return ["'MinReplicas' cannot be less than 0"]
    if high < 0:
        return ["'MaxReplicas' cannot be less than 0"]
    if low > high and high != 0:
        return ["'MinReplicas' cannot be greater than MaxReplicas"]
    return []


def webhook_errors(isvc: Manifest) -> list[str]:
    """What KServe's validating webhook refuses in an InferenceService's predictor.

    inference_service_validation.go validateInferenceService: the name
    (validateInferenceServiceName), the autoscaler class
    (validateInferenceServiceAutoscaler), then per component Validate() and
    validateAutoScalingCompExtension, which dispatches on the deployment mode
    and class: Standard + hpa -> HPA rules, Standard + keda -> KEDA rules,
    Standard + none/external -> nothing, any other mode -> KPA rules (HPA rules
    if Knative's class annotation is hpa.autoscaling.knative.dev).
    """
    name = isvc["metadata"]["name"]
    if not ISVC_NAME.match(name):
        return [f'the InferenceService "{name}" is invalid: a InferenceService name must ...']
    annotations = isvc["metadata"].get("annotations", {})
    klass = annotations.get("serving.kserve.io/autoscalerClass")
    if klass is not None and klass not in AUTOSCALER_CLASSES:
        return [f"[{klass}] is not a supported autoscaler class type"]
    predictor = isvc["spec"]["predictor"]
    errors = _component_errors(predictor)
    if errors:
        return errors
    mode = annotations.get("serving.kserve.io/deploymentMode")
    if mode == "Standard":
        if klass == "hpa":
            return _hpa_errors(predictor)
        if klass == "keda":
            return _keda_errors(predictor)
        return []
    if annotations.get("autoscaling.knative.dev/class") == KNATIVE_HPA_CLASS:
        return _hpa_errors(predictor)
    return _kpa_errors(predictor)


def keda_triggers(isvc: Manifest) -> list[dict[str, Any]]:
    """The ScaledObject triggers KServe makes from the External metrics
    (reconcilers/keda/keda_reconciler.go getKedaMetrics): only target.value is
    read, as the threshold; without it the threshold is "0"."""
    triggers = []
    for spec in (isvc["spec"]["predictor"].get("autoScaling") or {}).get("metrics", []):
        if spec.get("type") == "External":
            external = spec["external"]
            triggers.append(
                {
                    "type": external["metric"]["backend"],
                    "metadata": {
                        "serverAddress": external["metric"].get("serverAddress", ""),
                        "query": external["metric"]["query"],
                        "threshold": str(external.get("target", {}).get("value", "0")),
                    },
                }
            )
    return triggers


# --- runtime selection -------------------------------------------------------

# pkg/constants/constants.go ProtocolVersion (iota: v1=1, v2=2, grpc-v1=3, grpc-v2=4, unknown=5)
PROTOCOL_RANK = {"v1": 1, "v2": 2, "grpc-v1": 3, "grpc-v2": 4}
UNKNOWN_PROTOCOL = 5


@dataclass(frozen=True)
class Runtime:
    """A ServingRuntime or ClusterServingRuntime as the selection sees it."""

    name: str
    cluster: bool
    spec: dict[str, Any]
    # Newer objects sort first; the runtimes KServe installs predate the chart's.
    created: int = 0

    @classmethod
    def of(cls, obj: Manifest, created: int = 0) -> Runtime:
        return cls(
            obj["metadata"]["name"], obj["kind"] == "ClusterServingRuntime", obj["spec"], created
        )


@dataclass(frozen=True)
class Model:
    """spec.predictor.model after KServe's defaulting webhook."""

    format: str
    version: str | None = None
    protocol: str | None = None
    runtime: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def defaulted_model(predictor: dict[str, Any]) -> Model:
    """The model spec KServe's mutating webhook makes of a predictor
    (inference_service_defaults.go setPredictorModelDefaults): the old framework
    fields become `model` (assignONNXRuntime and assignTritonRuntime also set
    protocolVersion v2; assignPyTorchRuntime sets none), and a triton or vllm
    model format without a protocol gets v2."""
    if "model" in predictor:
        spec = predictor["model"]
        fmt = spec["modelFormat"]
        protocol = spec.get("protocolVersion")
        if protocol is None and fmt["name"] in ("triton", "vllm"):
            protocol = "v2"
        return Model(fmt["name"], fmt.get("version"), protocol, spec.get("runtime"))
    for key, fmt, protocol in (("onnx", "onnx", "v2"), ("pytorch", "pytorch", None)):
        if key in predictor:
            return Model(fmt, None, predictor[key].get("protocolVersion", protocol))
    raise ValueError(f"no ported framework in predictor {sorted(predictor)}")


def _protocol_priority(spec: dict[str, Any]) -> int:
    """predictor_model.go GetProtocolVersionPriority: the lowest protocol a runtime speaks."""
    protocols = spec.get("protocolVersions") or []
    if not protocols:
        return UNKNOWN_PROTOCOL
    return min(PROTOCOL_RANK.get(p, UNKNOWN_PROTOCOL) for p in protocols)


def _format_labels(model: Model, spec: dict[str, Any]) -> set[str]:
    """predictor_model.go getServingRuntimeSupportedModelFormatLabelSet: a format
    counts only if autoSelect is on, unless the model names its runtime."""
    labels = set()
    for supported in spec.get("supportedModelFormats", []):
        if model.runtime is not None or supported.get("autoSelect"):
            labels.add(f"mt:{supported['name']}")
            if supported.get("version") is not None:
                labels.add(f"mt:{supported['name']}:{supported['version']}")
    return labels


def runtime_supports_model(model: Model, spec: dict[str, Any]) -> bool:
    """predictor_model.go RuntimeSupportsModel and getModelFormatLabel: a pinned
    version must be listed; an unpinned format matches any version."""
    label = f"mt:{model.format}" + (f":{model.version}" if model.version is not None else "")
    return label in _format_labels(model, spec)


def _protocol_supported(model: Model, spec: dict[str, Any]) -> bool:
    """servingruntime_types.go IsProtocolVersionSupported, with the model's
    protocol from predictor_model.go GetProtocol (unset means v1)."""
    protocol = model.protocol or "v1"
    supported = spec.get("protocolVersions") or []
    return not supported or protocol in supported


def _priority(spec: dict[str, Any], fmt: str) -> int | None:
    """servingruntime_types.go GetPriority: the first entry of that format name."""
    for supported in spec.get("supportedModelFormats", []):
        if supported["name"] == fmt:
            value = supported.get("priority")
            return None if value is None else int(value)
    return None


def _by_priority(runtimes: list[Runtime], fmt: str) -> list[Runtime]:
    """predictor_model.go sortSupportedRuntimeByPriority: higher priority first,
    a runtime with a priority before one without. Go's sort.Slice is not
    stable in general, but for the dozen runtimes here it runs insertion sort,
    which is; Python's stable sort gives the same order."""

    def key(rt: Runtime) -> tuple[int, int]:
        value = _priority(rt.spec, fmt)
        return (0, -value) if value is not None else (1, 0)

    return sorted(runtimes, key=key)


def supporting_runtimes(model: Model, runtimes: list[Runtime]) -> list[Runtime]:
    """predictor_model.go GetSupportingRuntimes for a single-model, single-node
    predictor: the namespace's runtimes, then the cluster's, each list sorted by
    sortServingRuntimeList (lowest protocol first, newest first, then name) and
    then by priority. Namespaced runtimes come first whatever their priority."""

    def eligible(rt: Runtime) -> bool:
        spec = rt.spec
        return (
            not spec.get("disabled", False)
            and not spec.get("multiModel", False)
            and "workerSpec" not in spec
            and runtime_supports_model(model, spec)
            and _protocol_supported(model, spec)
        )

    def listed(cluster: bool) -> list[Runtime]:
        scope = [rt for rt in runtimes if rt.cluster == cluster]
        scope.sort(key=lambda rt: (_protocol_priority(rt.spec), -rt.created, rt.name))
        return _by_priority([rt for rt in scope if eligible(rt)], model.format)

    return listed(cluster=False) + listed(cluster=True)


def selected_runtime(predictor: dict[str, Any], runtimes: list[Runtime]) -> str | None:
    """The runtime KServe serves a predictor with (components/predictor.go
    reconcileModel): the named one if it exists and supports the model, else
    the first supporting runtime; None when KServe reports NoSupportingRuntime."""
    model = defaulted_model(predictor)
    if model.runtime is not None:
        named = [rt for rt in runtimes if rt.name == model.runtime]
        # isvcutils.GetServingRuntime: the namespace's first, then the cluster's.
        named.sort(key=lambda rt: rt.cluster)
        if not named:
            return None
        spec = named[0].spec
        if runtime_supports_model(model, spec) and _protocol_supported(model, spec):
            return named[0].name
        return None
    found = supporting_runtimes(model, runtimes)
    return found[0].name if found else None


def runtime_webhook_errors(new: Runtime, existing: list[Runtime]) -> list[str]:
    """What KServe's ServingRuntime/ClusterServingRuntime webhook refuses about
    priorities (pkg/webhook/admission/servingruntime/servingruntime_webhook.go
    validateModelFormatPrioritySame, validateServingRuntimePriority): within one
    runtime an auto-selected format has one priority; two runtimes of the same
    scope (namespace, or cluster) that share a protocol must not give one
    auto-selected format and version the same priority."""
    spec = new.spec
    if spec.get("disabled"):
        return []
    errors = []
    seen: dict[str, int | None] = {}
    for supported in spec.get("supportedModelFormats", []):
        if supported.get("autoSelect"):
            name, priority = supported["name"], supported.get("priority")
            if name in seen and None not in (seen[name], priority) and seen[name] != priority:
                errors.append(f"different priorities assigned for the model format {name}")
            seen.setdefault(name, priority)
    for other in existing:
        if other.cluster != new.cluster or other.name == new.name:
            continue
        if other.spec.get("disabled") or bool(other.spec.get("multiModel")) != bool(
            spec.get("multiModel")
        ):
            continue
        if not set(other.spec.get("protocolVersions") or []) & set(
            spec.get("protocolVersions") or []
        ):
            continue
        for theirs in other.spec.get("supportedModelFormats", []):
            for ours in spec.get("supportedModelFormats", []):
                same = theirs["name"].lower() == ours["name"].lower() and theirs.get(
                    "version"
                ) == ours.get("version")
                if (
                    same
                    and theirs.get("autoSelect")
                    and ours.get("autoSelect")
                    and theirs.get("priority") is not None
                    and theirs.get("priority") == ours.get("priority")
                ):
                    errors.append(
                        f"same priority assigned for the model format {ours['name']} "
                        f"in the runtimes {other.name} and {new.name}"
                    )
    return errors


# --- the predictor Service (Standard mode) --------------------------------------


def predictor_service_ports(container: dict[str, Any]) -> list[dict[str, Any]]:
    """reconcilers/service/service_reconciler.go createDefaultSvc (no batcher or
    logger): the first container port becomes Service port 80, every other one
    keeps its number; getAppProtocol marks a port whose name contains grpc or
    h2c as kubernetes.io/h2c. Without ports: 80 -> 8080."""
    ports = container.get("ports") or []
    if not ports:
        return [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]
    out = []
    for index, port in enumerate(ports):
        entry = {
            "name": port.get("name"),
            "port": 80 if index == 0 else port["containerPort"],
            "targetPort": port["containerPort"],
            "protocol": port.get("protocol") or "TCP",
        }
        name = port.get("name") or ""
        if "grpc" in name or "h2c" in name:
            entry["appProtocol"] = "kubernetes.io/h2c"
        out.append(entry)
    return out


# --- the predictor pod ----------------------------------------------------------

# Pod-level fields of ServingRuntimePodSpec that MergePodSpec carries over.
_RUNTIME_POD_FIELDS = ("nodeSelector", "affinity", "tolerations", "volumes", "imagePullSecrets")
# spec.predictor keys that are not PodSpec fields (ComponentExtensionSpec and co.).
_EXTENSION_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "scaleMetricType",
    "autoScaling",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "labels",
    "annotations",
    "deploymentStrategy",
    "model",
    "name",
    "storageUris",
    "workerSpec",
}
_MODEL_ONLY_FIELDS = ("modelFormat", "runtime", "protocolVersion", "storageUri", "storage")
# Strategic-merge keys of corev1 lists (patchMergeKey).
_MERGE_KEYS = {
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumes": "name",
    "tolerations": None,
    "imagePullSecrets": "name",
}


def _strategic_merge(base: Any, overlay: Any, key: str | None = None) -> Any:
    """A strategic merge patch of corev1 objects, as far as the chart uses them:
    maps merge key by key (so a probe keeps the base's handler next to the
    overlay's), lists with a merge key merge by it, other lists are replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for name, value in overlay.items():
            merged[name] = _strategic_merge(base.get(name), value, name) if name in base else value
        return copy.deepcopy(merged)
    if isinstance(base, list) and isinstance(overlay, list) and _MERGE_KEYS.get(key or ""):
        merge_key = _MERGE_KEYS[key or ""]
        by_key = {item.get(merge_key): item for item in base}
        for item in overlay:
            found = by_key.get(item.get(merge_key))
            by_key[item.get(merge_key)] = (
                _strategic_merge(found, item) if found is not None else item
            )
        return copy.deepcopy(list(by_key.values()))
    return copy.deepcopy(overlay)


def merged_container(runtime_container: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """pkg/controller/v1beta1/inferenceservice/utils/utils.go MergeRuntimeContainers:
    the model's container fields patched over the runtime's
    (pkg/utils/container_merge.go MergeContainerWithPatch), then args
    concatenated, the runtime's first."""
    overlay = {k: v for k, v in model.items() if k not in _MODEL_ONLY_FIELDS}
    merged = _strategic_merge(runtime_container, overlay)
    merged["args"] = list(runtime_container.get("args", [])) + list(model.get("args", []))
    return merged


def replace_placeholders(container: dict[str, Any], isvc: Manifest) -> dict[str, Any]:
    """utils.go ReplacePlaceholders for the placeholder the chart uses, {{.Name}}."""
    name = isvc["metadata"]["name"]
    out = copy.deepcopy(container)
    out["args"] = [a.replace("{{.Name}}", name) for a in out.get("args", [])]
    for item in out.get("env", []):
        if "value" in item:
            item["value"] = item["value"].replace("{{.Name}}", name)
    return out


def pod_labels(isvc: Manifest, runtime: Manifest | None, deployment_mode: str) -> dict[str, str]:
    """components/predictor.go buildObjectMeta: runtime spec labels, then the
    InferenceService's labels, then spec.predictor.labels (later ones win),
    plus serving.kserve.io/inferenceservice and component; in Standard mode
    reconcilers/deployment/deployment_reconciler.go createRawDefaultDeployment
    adds app: isvc.<name>-predictor to the pod template."""
    name = isvc["metadata"]["name"]
    labels: dict[str, str] = {}
    if runtime is not None:
        labels.update(runtime["spec"].get("labels", {}))
    labels.update(isvc["metadata"].get("labels", {}))
    labels.update(isvc["spec"]["predictor"].get("labels", {}))
    labels["serving.kserve.io/inferenceservice"] = name
    labels["component"] = "predictor"
    if deployment_mode == "Standard":
        labels["app"] = f"isvc.{name}-predictor"
    return labels


def pod_annotations(isvc: Manifest, runtime: Manifest | None) -> dict[str, str]:
    """buildObjectMeta's annotations: the runtime's spec annotations, the
    InferenceService's, the predictor's (the default disallowed list removes
    none the chart sets)."""
    annotations: dict[str, str] = {}
    if runtime is not None:
        annotations.update(runtime["spec"].get("annotations", {}))
    annotations.update(isvc["metadata"].get("annotations", {}))
    annotations.update(isvc["spec"]["predictor"].get("annotations", {}))
    return annotations


def predictor_pod(isvc: Manifest, runtime: Manifest | None) -> Manifest:
    """The predictor pod of an InferenceService that uses a runtime: the runtime
    container with the model's fields merged in and placeholders filled
    (components/predictor.go buildPodSpec), the pod fields of the runtime and
    the predictor merged (utils.go MergePodSpec), and KServe's default
    readiness probe when none is declared (deployment_reconciler.go
    setDefaultPodSpec). KServe's storage initializer and, in Knative mode,
    Knative's queue-proxy are added by webhooks not ported here.

    `runtime` None stands for a runtime the chart does not render (KServe's
    kserve-torchserve): then only the model's own container fields are known.
    """
    predictor = isvc["spec"]["predictor"]
    mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "")
    model = predictor["model"]
    if runtime is not None:
        (base,) = runtime["spec"]["containers"]
        container = merged_container(base, model)
    else:
        container = {k: v for k, v in model.items() if k not in _MODEL_ONLY_FIELDS}
        container.setdefault("name", "kserve-container")
    container = replace_placeholders(container, isvc)
    if "readinessProbe" not in container:
        ports = container.get("ports") or [{"containerPort": 8080}]
        container["readinessProbe"] = {
            "tcpSocket": {"port": ports[0]["containerPort"]},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
    runtime_pod = {
        k: runtime["spec"][k] for k in _RUNTIME_POD_FIELDS if runtime and k in runtime["spec"]
    }
    predictor_pod_fields = {k: v for k, v in predictor.items() if k not in _EXTENSION_FIELDS}
    spec = _strategic_merge(runtime_pod, predictor_pod_fields)
    spec["containers"] = [container]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{isvc['metadata']['name']}-predictor",
            "namespace": isvc["metadata"]["namespace"],
            "labels": pod_labels(isvc, runtime, mode),
            "annotations": pod_annotations(isvc, runtime),
        },
        "spec": spec,
    }


# --- label selectors --------------------------------------------------------------


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector against a label set (k8s.io/apimachinery
    LabelSelectorAsSelector): matchLabels all equal, every matchExpression holds;
    an empty selector selects everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
