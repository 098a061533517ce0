"""Rendering and validation helpers shared by the chart tests.

The chart is rendered by Helm's own engine (helm-python-sdk binds Helm's Go
SDK), so what the tests see is what `helm template` / `helm install` produce.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

try:
    import kserve_rules
except ImportError:  # imported as tests.charts.chart_support (tests/predictors does)
    from tests.charts import kserve_rules

REPO_ROOT = Path(__file__).resolve().parents[2]
# MODELPLANE_CHART_DIR runs the chart tests against another copy of the chart,
# e.g. an older commit's (git archive HEAD~1 charts | tar -x -C /tmp/old), to
# see that a test fails without the change it guards.
CHART_DIR = Path(os.environ.get("MODELPLANE_CHART_DIR") or REPO_ROOT / "charts" / "modelplane")
EXAMPLES_DIR = CHART_DIR / "examples"
MANIFESTS_DIR = REPO_ROOT / "manifests"
RENDER_MANIFESTS = REPO_ROOT / "scripts" / "render-manifests"

RELEASE = "modelplane"
NAMESPACE = "modelplane"
# The Kubernetes version the core objects are validated against: the newest
# schema kubernetes-validate ships.
KUBE_VERSION = kubernetes_validate.latest_version()

KSERVE_GROUP = "serving.kserve.io"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Manifest = dict[str, Any]


def examples() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text())
    return values or {}


def install_dry_run(
    values: dict[str, Any] | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    chart: Path | None = None,
) -> dict[str, Any]:
    """A client-side dry-run install: the manifest stream and NOTES of `helm install`."""
    config = helm.Config(storage_driver="memory", namespace=namespace)
    try:
        return config.install(
            str(chart or CHART_DIR), release, values or {}, namespace=namespace, dry_run="client"
        )
    finally:
        config.close()


def render(values: dict[str, Any] | None = None, **kwargs: Any) -> str:
    return str(install_dry_run(values, **kwargs)["manifest"])


def parse(stream: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(stream) if doc]


def kserve_crds_candidates() -> list[Path]:
    """$MODELPLANE_KSERVE_CRDS if set, then <repo>/../shared/kserve-crds."""
    configured = os.environ.get("MODELPLANE_KSERVE_CRDS")
    default = REPO_ROOT.parent / "shared" / "kserve-crds"
    return [Path(configured), default] if configured else [default]


def kserve_crds_dir() -> Path | None:
    return next((p for p in kserve_crds_candidates() if p.is_dir()), None)


def _strict(schema: Any) -> Any:
    """Reject unknown fields, as `kubectl apply --validate=strict` does.

    The API server silently prunes fields a structural CRD schema does not
    declare, so a misspelt key would vanish without an error; here it fails.
    """
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def kserve_validators(crds_dir: Path) -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> a validator of the CRD's openAPIV3Schema, made strict."""
    schemas: dict[tuple[str, str], jsonschema.Draft7Validator] = {}
    for path in sorted(crds_dir.glob("*.yaml")):
        # The InferenceService CRD is about 2 MB: the C loader parses it in a
        # fraction of the pure-Python loader's time.
        crd = yaml.load(path.read_text(), Loader=_YAML_LOADER)
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(
                    _strict(schema)
                )
    return schemas


def validation_errors(obj: Manifest, crds_dir: Path) -> list[str]:
    """Every schema violation of one rendered object, as readable strings."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = f"{kind}/{obj.get('metadata', {}).get('name')}"
    if api_version.startswith(f"{KSERVE_GROUP}/"):
        validator = kserve_validators(crds_dir).get((api_version, kind))
        if validator is None:
            return [f"{name}: no KServe CRD serves {api_version} {kind}"]
        return [
            f"{name}: {'/'.join(map(str, err.absolute_path)) or '<root>'}: {err.message}"
            for err in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = "/".join(map(str, err.path)) or "<root>"
        return [f"{name}: {path}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: Kubernetes {KUBE_VERSION} has no {api_version} {kind}"]
    return []


def by_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o.get("kind") == kind]


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in by_kind(objects, kind):
        if obj["metadata"]["name"] == name:
            return obj
    raise LookupError(f"no {kind}/{name} in {[o['metadata']['name'] for o in objects]}")


def runtime_for(objects: list[Manifest], isvc: Manifest) -> Manifest:
    name = isvc["spec"]["predictor"]["model"]["runtime"]
    for kind in ("ServingRuntime", "ClusterServingRuntime"):
        for obj in by_kind(objects, kind):
            if obj["metadata"]["name"] == name:
                return obj
    raise LookupError(f"runtime {name} of {isvc['metadata']['name']} is not rendered")


def predictor_pods(objects: list[Manifest]) -> list[Manifest]:
    """The predictor pod KServe makes of each InferenceService (kserve_rules.predictor_pod);
    for a runtime the chart does not render (kserve-torchserve), the model's own fields."""
    pods = []
    for isvc in by_kind(objects, "InferenceService"):
        try:
            runtime: Manifest | None = runtime_for(objects, isvc)
        except LookupError:
            runtime = None
        pods.append(kserve_rules.predictor_pod(isvc, runtime))
    return pods


def pod_templates(objects: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every pod the rendered objects make: the predictor
    pods and the CronJobs' job pods."""
    found = [(p["metadata"]["name"], p["spec"]) for p in predictor_pods(objects)]
    for cron in by_kind(objects, "CronJob"):
        found.append(
            (cron["metadata"]["name"], cron["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        )
    return found


# Volume types the restricted Pod Security Standard allows.
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Where a pod spec breaks the restricted Pod Security Standard (Kubernetes
    docs, concepts/security/pod-security-standards, profile "restricted" as of
    v1.34; what the PodSecurity admission plugin checks with `enforce: restricted`)."""
    problems = []
    pod_ctx = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is true")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)} is not an allowed type")
    if pod_ctx.get("sysctls"):
        problems.append("pod sysctls set")
    containers = [*pod.get("initContainers", []), *pod.get("containers", [])]
    for c in containers:
        ctx = c.get("securityContext") or {}
        where = f"container {c['name']}"
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities {caps['add']}")
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as UID 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{where}: hostPort set")
        if ctx.get("procMount") not in (None, "Default"):
            problems.append(f"{where}: procMount {ctx['procMount']}")
        apparmor = (ctx.get("appArmorProfile") or {}).get("type")
        if apparmor == "Unconfined":
            problems.append(f"{where}: AppArmor unconfined")
    return problems


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
