{{/* Names and labels shared by every object of the release. */}}
{{- define "helios.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "helios.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "helios.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "helios.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: helios
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway") */}}
{{- define "helios.selectorLabels" -}}
app.kubernetes.io/name: {{ include "helios.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "helios.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The streaming services and the API, in a fixed order. */}}
{{- define "helios.components" -}}
gateway bidder auctioneer profiles api
{{- end -}}

{{/* The HTTP port serving /metrics of a component (the gateway and API serve it on their
     main port, the others on their status port). */}}
{{- define "helios.metricsPort" -}}
{{- $c := index .root.Values .component -}}
{{- if has .component (list "gateway" "api") -}}{{ $c.port }}{{- else -}}{{ $c.metricsPort }}{{- end -}}
{{- end -}}

{{/* Pod-level security context: non-root (the image's uid), RuntimeDefault seccomp. */}}
{{- define "helios.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context: read-only root filesystem, no capabilities. */}}
{{- define "helios.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment every Helios container gets: process settings and the settings ConfigMap. */}}
{{- define "helios.envFrom" -}}
- configMapRef:
    name: {{ include "helios.fullname" . }}-config
{{- end -}}

{{- define "helios.processEnv" -}}
{{- range $k, $v := .Values.processEnv }}
- name: {{ $k }}
  value: {{ include "helios.str" $v | quote }}
{{- end }}
{{- end -}}

{{/* A value as an environment string. YAML numbers reach templates as float64, and
     toString prints 1048576 as "1.048576e+06", which an integer setting refuses. */}}
{{- define "helios.str" -}}
{{- if kindIs "float64" . -}}
{{- if eq . (float64 (int64 .)) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}
