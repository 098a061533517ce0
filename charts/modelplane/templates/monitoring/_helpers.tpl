{{- /*
Names and labels of the monitoring objects. Prefixed "modelplane.monitoring."
so they cannot clash with the chart's own helpers.
*/}}
{{- define "modelplane.monitoring.name" -}}
{{- if contains "modelplane" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-modelplane" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelplane.monitoring.labels" -}}
app.kubernetes.io/part-of: modelplane
app.kubernetes.io/component: monitoring
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}
