{{/* Chart name (nameOverride), full name (fullnameOverride) and the chart label. */}}
{{- define "modelplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object this release names itself: the release name, plus the
chart name unless the release name contains it already, so the default release
"modelplane" keeps the short names (modelplane-onnx, modelplane-model-store)
and a second release "team-b" gets team-b-modelplane-onnx.
*/}}
{{- define "modelplane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "modelplane.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "modelplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels that may reach pod templates. KServe copies an InferenceService's labels
onto the predictor Deployment and its pods (v0.20.0
pkg/controller/v1beta1/inferenceservice/components/predictor.go buildObjectMeta,
reconcilers/deployment/deployment_reconciler.go createRawDefaultDeployment), so
a label that changes with every chart release (helm.sh/chart,
app.kubernetes.io/version) would roll every predictor on each upgrade.
*/}}
{{- define "modelplane.stableLabels" -}}
{{ include "modelplane.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelplane
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of objects that never reach a pod template: stableLabels plus the chart version. */}}
{{- define "modelplane.labels" -}}
{{ include "modelplane.stableLabels" . }}
helm.sh/chart: {{ include "modelplane.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* The labels that pick this release's predictor pods (NetworkPolicy, PodMonitor). */}}
{{- define "modelplane.predictorSelectorLabels" -}}
{{ include "modelplane.selectorLabels" . }}
app.kubernetes.io/component: predictor
{{- end -}}

{{/* The ServiceAccount the predictor pods run as ("" = namespace default). */}}
{{- define "modelplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-predictor" (include "modelplane.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The model store claim: modelStore.pvc.name, or <fullname>-model-store. */}}
{{- define "modelplane.modelStoreClaim" -}}
{{- default (printf "%s-model-store" (include "modelplane.fullname" .)) .Values.modelStore.pvc.name -}}
{{- end -}}

{{/*
Image reference: (list $ "cpu"|"gpu") or (list $ <image dict>). A digest pins
the image (repository@sha256:...); else the tag, by default the chart's appVersion.
*/}}
{{- define "modelplane.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- if kindIs "string" $img -}}{{- $img = index $root.Values.image $img -}}{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Store format -> runtime family: onnx -> onnx; torchscript, torch_export, pytorch -> torch. */}}
{{- define "modelplane.family" -}}
{{- if eq . "onnx" -}}onnx{{- else -}}torch{{- end -}}
{{- end -}}

{{/* Store format -> KServe model format name. */}}
{{- define "modelplane.kserveFormat" -}}
{{- if eq . "onnx" -}}onnx{{- else -}}pytorch{{- end -}}
{{- end -}}

{{/* Name of a modelplane runtime: (list $ "onnx"|"torch" "cpu"|"gpu"); prefix runtimes.namePrefix or the full name. */}}
{{- define "modelplane.runtimeName" -}}
{{- $root := index . 0 -}}
{{- $prefix := default (include "modelplane.fullname" $root) $root.Values.runtimes.namePrefix -}}
{{- $name := printf "%s-%s" $prefix (index . 1) -}}
{{- if eq (index . 2) "gpu" -}}{{- $name = printf "%s-gpu" $name -}}{{- end -}}
{{- $name -}}
{{- end -}}

{{/* True when any model asks for a GPU. */}}
{{- define "modelplane.anyGpu" -}}
{{- range .Values.models -}}{{- if eq (default "cpu" .accelerator) "gpu" -}}true{{- end -}}{{- end -}}
{{- end -}}

{{/* Resources for a GPU pod: the GPU request added to requests and limits. (list $ resources) */}}
{{- define "modelplane.withGpu" -}}
{{- $root := index . 0 -}}
{{- $res := deepCopy (index . 1) -}}
{{- $gpu := dict $root.Values.gpu.resourceName (toString $root.Values.gpu.count) -}}
{{- $_ := set $res "limits" (merge (deepCopy (default dict $res.limits)) $gpu) -}}
{{- $_ := set $res "requests" (merge (deepCopy (default dict $res.requests)) $gpu) -}}
{{- toYaml $res -}}
{{- end -}}

{{/*
The InferenceService name of a model. V2 (Triton) model names may carry "_"
and "." (densenet_onnx) and capitals; an InferenceService name must match
KServe's [a-z]([-a-z0-9]*[a-z0-9])? (v0.20.0 pkg/apis/serving/v1beta1/
inference_service_validation.go validateInferenceServiceName). So the name is
lowered and every run of other characters becomes one "-", unless the model
sets inferenceServiceName. The server still gets the model name itself
(--model_name), so clients call /v2/models/densenet_onnx.
*/}}
{{- define "modelplane.isvcName" -}}
{{- if .inferenceServiceName -}}
{{- .inferenceServiceName -}}
{{- else -}}
{{- regexReplaceAll "[^a-z0-9]+" (lower .name) "-" | trimAll "-" -}}
{{- end -}}
{{- end -}}

{{/* The V2 name the server answers to: the model name, or servedModelName (torchserve). */}}
{{- define "modelplane.servedName" -}}
{{- default .name .servedModelName -}}
{{- end -}}

{{/*
Shutdown timing of a predictor pod (Standard mode), as YAML: preStop (sleep
before SIGTERM), drain (--grace_period) and termination
(terminationGracePeriodSeconds = preStop + drain + margin). See values.yaml
runtimes.shutdown for why these numbers.
*/}}
{{- define "modelplane.shutdown" -}}
{{- $s := .Values.runtimes.shutdown -}}
{{- $termination := add (int $s.preStopSleepSeconds) (int $s.drainSeconds) (int $s.marginSeconds) -}}
preStop: {{ int $s.preStopSleepSeconds }}
drain: {{ int $s.drainSeconds }}
termination: {{ $termination }}
{{- end -}}

{{/*
The effective autoscaling settings of one model, as YAML: the top-level block
with the model's block merged over it, plus computed keys: class (hpa, keda,
none or "" for Knative), metric and target with their per-mode defaults.
Every rule here is one KServe's admission webhook (v0.20.0
pkg/apis/serving/v1beta1/inference_service_validation.go) or controller
enforces, checked before the InferenceService reaches the cluster so a bad
value fails at install with the key that caused it.
(list $ model)
*/}}
{{- define "modelplane.autoscaling" -}}
{{- $root := index . 0 -}}
{{- $m := index . 1 -}}
{{- $mode := $root.Values.deploymentMode -}}
{{- $a := mergeOverwrite (deepCopy $root.Values.autoscaling) (deepCopy (default dict $m.autoscaling)) -}}
{{- $where := printf "models[%s]" $m.name -}}
{{- if and (ne $mode "Knative") (gt (int $a.containerConcurrency) 0) -}}
  {{- fail (printf "%s: autoscaling.containerConcurrency is enforced by Knative's queue-proxy; deploymentMode %s has none, so the limit would be ignored (leave it 0)" $where $mode) -}}
{{- end -}}
{{- if $a.enabled -}}
  {{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
    {{- fail (printf "%s: autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" $where (int $a.minReplicas) (int $a.maxReplicas)) -}}
  {{- end -}}
  {{- if and (eq (int $a.minReplicas) 0) (ne $mode "Knative") -}}
    {{- fail (printf "%s: autoscaling.minReplicas 0 (scale to zero) needs deploymentMode Knative; %s mode keeps at least one replica (KServe's HPA raises 0 to 1, and with KEDA no activator holds the first request while a pod starts)" $where $mode) -}}
  {{- end -}}
  {{- if eq $mode "Knative" -}}
    {{- if $a.class -}}
      {{- fail (printf "%s: autoscaling.class %q applies to deploymentMode Standard only (KEDA and HPA scale Deployments); Knative mode uses the KPA, leave class empty" $where $a.class) -}}
    {{- end -}}
    {{- $_ := set $a "metric" (default "concurrency" $a.metric) -}}
    {{- if not (has $a.metric (list "concurrency" "rps")) -}}
      {{- fail (printf "%s: autoscaling.metric %q is not a KPA metric; in Knative mode use concurrency or rps" $where $a.metric) -}}
    {{- end -}}
  {{- else -}}
    {{- $_ := set $a "class" (default "hpa" $a.class) -}}
    {{- if eq $a.class "keda" -}}
      {{- if $a.metric -}}
        {{- fail (printf "%s: autoscaling.metric must be empty with class keda (KServe rejects scaleMetric for KEDA; the trigger is autoscaling.keda.query)" $where) -}}
      {{- end -}}
      {{- if not $a.keda.serverAddress -}}
        {{- fail (printf "%s: autoscaling.keda.serverAddress (the Prometheus URL) is required with class keda" $where) -}}
      {{- end -}}
      {{- $_ := set $a "metric" "keda" -}}
    {{- else -}}
      {{- $_ := set $a "metric" (default "cpu" $a.metric) -}}
      {{- if not (has $a.metric (list "cpu" "memory")) -}}
        {{- fail (printf "%s: autoscaling.metric %q is not an HPA metric; in Standard mode with class hpa use cpu or memory (concurrency and rps need Knative)" $where $a.metric) -}}
      {{- end -}}
    {{- end -}}
  {{- end -}}
  {{- $defaults := dict "concurrency" 10 "rps" 50 "cpu" 80 "memory" 80 "keda" 20 -}}
  {{- $_ := set $a "target" (default (index $defaults $a.metric) $a.target) -}}
  {{- if and (has $a.metric (list "cpu" "memory")) (gt (int $a.target) 100) -}}
    {{- fail (printf "%s: autoscaling.target %d: with metric %s the target is a utilisation percentage of the request, 1 to 100 (KServe's HPA sets averageUtilization from it and its webhook refuses more than 100)" $where (int $a.target) $a.metric) -}}
  {{- end -}}
{{- else -}}
  {{- if and (eq $a.class "keda") (eq $mode "Knative") -}}
    {{- fail (printf "%s: autoscaling.class keda applies to deploymentMode Standard only" $where) -}}
  {{- end -}}
  {{- $_ := set $a "class" (ternary "" "none" (eq $mode "Knative")) -}}
{{- end -}}
{{- toYaml $a -}}
{{- end -}}
