{{/* Chart name, chart label and the labels every object carries. */}}
{{- define "modelplane.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelplane.labels" -}}
helm.sh/chart: {{ include "modelplane.chart" . }}
{{ include "modelplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelplane
{{- end -}}

{{/* The ServiceAccount the predictor pods run as ("" = namespace default). */}}
{{- define "modelplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-predictor" (include "modelplane.name" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image reference for accelerator "cpu" or "gpu": (list $ "cpu") */}}
{{- define "modelplane.image" -}}
{{- $root := index . 0 -}}
{{- $img := index $root.Values.image (index . 1) -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* Store format -> runtime family: onnx -> onnx; torchscript, torch_export, pytorch -> torch. */}}
{{- define "modelplane.family" -}}
{{- if eq . "onnx" -}}onnx{{- else -}}torch{{- end -}}
{{- end -}}

{{/* Store format -> KServe model format name. */}}
{{- define "modelplane.kserveFormat" -}}
{{- if eq . "onnx" -}}onnx{{- else -}}pytorch{{- end -}}
{{- end -}}

{{/* Name of a modelplane runtime: (list $ "onnx"|"torch" "cpu"|"gpu") */}}
{{- define "modelplane.runtimeName" -}}
{{- $root := index . 0 -}}
{{- $name := printf "%s-%s" $root.Values.runtimes.namePrefix (index . 1) -}}
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
The effective autoscaling settings of one model, as YAML: the top-level block
with the model's block merged over it, plus computed keys: class (hpa, keda,
none or "" for Knative), metric and target with their per-mode defaults.
Validation of the combinations happens here so every template sees the same.
(list $ model)
*/}}
{{- define "modelplane.autoscaling" -}}
{{- $root := index . 0 -}}
{{- $m := index . 1 -}}
{{- $mode := $root.Values.deploymentMode -}}
{{- $a := mergeOverwrite (deepCopy $root.Values.autoscaling) (deepCopy (default dict $m.autoscaling)) -}}
{{- $where := printf "models[%s]" $m.name -}}
{{- if $a.enabled -}}
  {{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
    {{- fail (printf "%s: autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" $where (int $a.minReplicas) (int $a.maxReplicas)) -}}
  {{- end -}}
  {{- if and (eq (int $a.minReplicas) 0) (ne $mode "Knative") -}}
    {{- fail (printf "%s: autoscaling.minReplicas 0 (scale to zero) needs deploymentMode Knative; %s mode keeps at least one replica" $where $mode) -}}
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
{{- else -}}
  {{- if and (eq $a.class "keda") (eq $mode "Knative") -}}
    {{- fail (printf "%s: autoscaling.class keda applies to deploymentMode Standard only" $where) -}}
  {{- end -}}
  {{- $_ := set $a "class" (ternary "" "none" (eq $mode "Knative")) -}}
{{- end -}}
{{- toYaml $a -}}
{{- end -}}
