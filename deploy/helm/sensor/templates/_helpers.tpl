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
{{- $outputs := .Values.outputs }}
{{- if .Values.store.enabled }}
{{- $store := dict "path" "/var/lib/sensor/alerts.db" "max_age" .Values.store.maxAge "max_size" .Values.store.maxSize }}
{{- $outputs = append $outputs (dict "store" $store) }}
{{- end }}
{{- if .Values.console.enabled }}
{{- $console := dict "url" (include "sensor.consoleUrl" .) "token" (dict "file" "/etc/sensor/secrets/console-ingest-token") }}
{{- $outputs = append $outputs (dict "console" $console "retry" (dict "attempts" 20 "max_backoff" "30s")) }}
{{- end }}
{{- $config := dict
  "rules" $rules
  "outputs" $outputs
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

{{/* The console's Service URL with its base path, as the nodes reach it. */}}
{{- define "sensor.consoleUrl" -}}
{{- printf "http://%s-console.%s.svc:%d%s" (include "sensor.fullname" .) .Release.Namespace (int .Values.console.port) (trimSuffix "/" .Values.console.basePath) }}
{{- end }}

{{/* The console's Secret. */}}
{{- define "sensor.consoleSecretName" -}}
{{- default (printf "%s-console" (include "sensor.fullname" .)) .Values.console.secret.name }}
{{- end }}

{{/* sensor.yaml of the console: its `ui` section, secrets from its Secret's files. */}}
{{- define "sensor.consoleConfig" -}}
{{- $secrets := "/etc/sensor/console-secrets" }}
{{- $store := dict "postgres" (dict "url" .Values.console.postgres.url "password" (dict "file" (printf "%s/postgres-password" $secrets)) "pool" .Values.console.postgres.pool) "max_age" .Values.console.maxAge }}
{{- if .Values.console.maxSize }}
{{- $_ := set $store "max_size" .Values.console.maxSize }}
{{- end }}
{{- $ui := dict
  "address" (printf "0.0.0.0:%d" (int .Values.console.port))
  "base_path" .Values.console.basePath
  "store" $store
  "admin_file" (printf "%s/admin-password-hash" $secrets)
  "ingest_tokens" (list (dict "file" (printf "%s/ingest-token" $secrets))) }}
{{- if hasKey .Values.console.secret.data "api-token" }}
{{- $_ := set $ui "api_tokens" (list (dict "file" (printf "%s/api-token" $secrets))) }}
{{- end }}
{{- $config := dict "ui" $ui "log" .Values.log }}
{{- with .Values.console.k8sAudit }}
{{- if .enabled }}
{{- $tls := "/etc/sensor/audit-tls" }}
{{- $files := dict "cert_file" (printf "%s/tls.crt" $tls) "key_file" (printf "%s/tls.key" $tls) }}
{{- if .requireClientCertificate }}
{{- $_ := set $files "client_ca_file" (printf "%s/ca.crt" $tls) }}
{{- end }}
{{- $webhook := dict "address" (printf "0.0.0.0:%d" (int .port)) "tls" $files }}
{{- $audit := dict "webhook" $webhook }}
{{- if .clusterName }}
{{- $_ := set $audit "cluster_name" .clusterName }}
{{- end }}
{{- if .log.enabled }}
{{- $log := dict "postgres" (get $store "postgres") "max_age" .log.maxAge }}
{{- if .log.maxSize }}
{{- $_ := set $log "max_size" .log.maxSize }}
{{- end }}
{{- $_ := set $audit "store" $log }}
{{- $_ := set $audit "keep" (dict "levels" .log.levels "verbs" .log.verbs) }}
{{- end }}
{{- $_ := set $config "k8s_audit" $audit }}
{{- $_ := set $config "outputs" (list (dict "stdout" (dict "format" "json")) (dict "store" $store)) }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Labels that select the console's pods (not the DaemonSet's, whose selector they miss). */}}
{{- define "sensor.consoleSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sensor.name" . }}-console
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
{{- end }}
