{{- /*
Names and labels of the monitoring objects, used by the generated
prometheusrule.yaml too (scripts/sync-monitoring). The name is the release's
full name, so two releases in one namespace get their own objects; the labels
are the chart's standard ones.
*/}}
{{- define "modelplane.monitoring.name" -}}
{{- include "modelplane.fullname" . -}}
{{- end -}}

{{- define "modelplane.monitoring.labels" -}}
{{ include "modelplane.labels" . }}
app.kubernetes.io/component: monitoring
{{- end -}}

{{- /* The pods the PodMonitors scrape: monitoring.podMonitor.selector, else this release's predictors. */}}
{{- define "modelplane.monitoring.selector" -}}
{{- $pm := (.Values.monitoring | default dict).podMonitor | default dict -}}
{{- if $pm.selector -}}
{{- toYaml $pm.selector -}}
{{- else -}}
matchLabels:
  {{- include "modelplane.predictorSelectorLabels" . | nindent 2 }}
{{- end -}}
{{- end -}}
