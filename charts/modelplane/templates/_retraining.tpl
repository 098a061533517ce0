{{- /*
One step of the retraining job: (list $ name image args). Every step runs the
same image with the same hardening as the predictors; only the arguments
differ.
*/}}
{{- define "modelplane.retraining.container" -}}
{{- $root := index . 0 -}}
{{- $r := $root.Values.retraining -}}
- name: {{ index . 1 }}
  image: {{ index . 2 }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: [modelplane]
  args:
    {{- toYaml (index . 3) | nindent 4 }}
  env:
    # Python, MLflow and torch write caches and temporary files under $HOME
    # and /tmp; / is read-only.
    - name: HOME
      value: /tmp
    - name: PYTHONDONTWRITEBYTECODE
      value: "1"
    - name: MLFLOW_DISABLE_TELEMETRY
      value: "true"
    # MLflow looks for git to record the source version; the image has none,
    # and GitPython would print a page of advice on every step.
    - name: GIT_PYTHON_REFRESH
      value: quiet
    {{- with $r.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $r.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $r.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: scratch
      mountPath: /tmp
    - name: model-store
      mountPath: /mnt/store
{{- end -}}
