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

{{/* Secured Kafka (values kafka.security; ingest_services/common/kafka.py security_config
     reads these variables). The non-secret settings, as a YAML map: the ConfigMap carries
     them, the topics hook Job (which runs before the ConfigMap exists) sets them itself.
     SASL and TLS values are rendered only with a protocol that uses them (else ""). */}}
{{- define "helios.kafkaSecurity" -}}
{{- $sec := .Values.kafka.security -}}
{{- $sasl := hasPrefix "SASL_" $sec.protocol -}}
{{- $tls := has $sec.protocol (list "SSL" "SASL_SSL") -}}
HELIOS_KAFKA_SECURITY_PROTOCOL: {{ $sec.protocol | quote }}
HELIOS_KAFKA_SASL_MECHANISM: {{ ternary $sec.sasl.mechanism "" $sasl | quote }}
HELIOS_KAFKA_SASL_USERNAME: {{ ternary $sec.sasl.username "" (and $sasl (not $sec.sasl.usernameKey)) | quote }}
HELIOS_KAFKA_SSL_CA_LOCATION: {{ ternary (printf "/etc/helios/kafka/ca/%s" $sec.tls.caKey) "" (and $tls (ne $sec.tls.caSecret "")) | quote }}
HELIOS_KAFKA_SSL_CERTIFICATE_LOCATION: {{ ternary (printf "/etc/helios/kafka/client/%s" $sec.tls.certKey) "" (and $tls (ne $sec.tls.clientSecret "")) | quote }}
HELIOS_KAFKA_SSL_KEY_LOCATION: {{ ternary (printf "/etc/helios/kafka/client/%s" $sec.tls.keyKey) "" (and $tls (ne $sec.tls.clientSecret "")) | quote }}
HELIOS_KAFKA_SSL_CHECK_HOSTNAME: {{ $sec.tls.checkHostname | quote }}
{{- end -}}

{{/* The Kafka credentials, always by reference: the SASL password (and user, with
     usernameKey) from sasl.existingSecret, the client key's password from tls.clientSecret.
     A reference the configuration does not use is `optional` (the variable stays unset). */}}
{{- define "helios.kafkaSecretEnv" -}}
{{- $sec := .Values.kafka.security -}}
{{- $sasl := hasPrefix "SASL_" $sec.protocol -}}
{{- $fullname := include "helios.fullname" . -}}
- name: HELIOS_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $sec.sasl.existingSecret | default (printf "%s-kafka-sasl" $fullname) }}
      key: {{ $sec.sasl.passwordKey }}
      optional: {{ not $sasl }}
{{- if and $sasl $sec.sasl.usernameKey }}
- name: HELIOS_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $sec.sasl.existingSecret }}
      key: {{ $sec.sasl.usernameKey }}
{{- end }}
{{- $keyPw := and (has $sec.protocol (list "SSL" "SASL_SSL")) $sec.tls.clientSecret $sec.tls.keyPasswordKey }}
- name: HELIOS_KAFKA_SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $sec.tls.clientSecret | default (printf "%s-kafka-client" $fullname) }}
      key: {{ $sec.tls.keyPasswordKey | default "password" }}
      optional: {{ not $keyPw }}
{{- end -}}

{{/* The CA and client-certificate Secrets, mounted read-only where the settings point. */}}
{{- define "helios.kafkaVolumeMounts" -}}
{{- $sec := .Values.kafka.security -}}
{{- if has $sec.protocol (list "SSL" "SASL_SSL") }}
{{- if $sec.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/helios/kafka/ca
  readOnly: true
{{- end }}
{{- if $sec.tls.clientSecret }}
- name: kafka-client
  mountPath: /etc/helios/kafka/client
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "helios.kafkaVolumes" -}}
{{- $sec := .Values.kafka.security -}}
{{- if has $sec.protocol (list "SSL" "SASL_SSL") }}
{{- if $sec.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ $sec.tls.caSecret }}
    items: [{key: {{ $sec.tls.caKey | quote }}, path: {{ $sec.tls.caKey | quote }}}]
{{- end }}
{{- if $sec.tls.clientSecret }}
- name: kafka-client
  secret:
    secretName: {{ $sec.tls.clientSecret }}
    items:
      - {key: {{ $sec.tls.certKey | quote }}, path: {{ $sec.tls.certKey | quote }}}
      - {key: {{ $sec.tls.keyKey | quote }}, path: {{ $sec.tls.keyKey | quote }}}
{{- end }}
{{- end }}
{{- end -}}
