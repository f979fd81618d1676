{{/* The chart name, or nameOverride. */}}
{{- define "sensor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name: the release name alone when it already names the chart. */}}
{{- define "sensor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the release's pods; never change them on upgrade. */}}
{{- define "sensor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sensor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "sensor.labels" -}}
{{ include "sensor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The Secret mounted in /etc/sensor/secrets. */}}
{{- define "sensor.secretName" -}}
{{- default (printf "%s-secrets" (include "sensor.fullname" .)) .Values.secret.name }}
{{- end }}

{{/* The Secret's keys to mount: those the chart creates and those listed, sorted, as JSON. */}}
{{- define "sensor.secretKeys" -}}
{{- concat (keys .Values.secret.data) .Values.secret.keys | uniq | sortAlpha | toJson }}
{{- end }}

{{/* The node directories of `file` outputs, mounted read-write at the same paths, as JSON. */}}
{{- define "sensor.alertDirs" -}}
{{- $dirs := list }}
{{- range .Values.outputs }}
{{- if hasKey . "file" }}
{{- $dirs = append $dirs (dir .file.path) }}
{{- end }}
{{- end }}
{{- $dirs | uniq | toJson }}
{{- end }}

{{/* sensor.yaml: the rules, outputs, log and container settings, then `config`. The metrics
address is the pod's IP, from the DaemonSet's environment. */}}
{{- define "sensor.config" -}}
{{- $rules := list }}
{{- if .Values.rules.builtin }}
{{- $rules = append $rules "builtin" }}
{{- end }}
{{- if .Values.rules.files }}
{{- $rules = append $rules "/etc/sensor/rules.d" }}
{{- end }}
{{- $config := dict
  "rules" $rules
  "outputs" .Values.outputs
  "log" .Values.log
  "containers" .Values.containers }}
{{- toYaml (mergeOverwrite $config .Values.config) }}
{{- end }}

{{/*
HTTPS when config.metrics.tls is set (the endpoint then speaks nothing else), else HTTP.
*/}}
{{- define "sensor.metricsScheme" -}}
{{- if dig "metrics" "tls" nil .Values.config -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end }}
