{{/* Chart name. */}}
{{- define "devsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart> unless the release already contains the chart name. */}}
{{- define "devsync.fullname" -}}
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

{{/* Name of one component's resources: <fullname>-<component>. */}}
{{- define "devsync.componentName" -}}
{{- printf "%s-%s" (include "devsync.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "devsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "devsync.labels" -}}
helm.sh/chart: {{ include "devsync.chart" . }}
{{ include "devsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: devsync
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "devsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "devsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component (call with dict "root" $ "component" "worker"). */}}
{{- define "devsync.componentLabels" -}}
{{ include "devsync.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "devsync.componentSelectorLabels" -}}
{{ include "devsync.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "devsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "devsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "devsync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "devsync.rulesConfigMapName" -}}
{{- default (printf "%s-rules" (include "devsync.fullname" .)) .Values.rules.existingConfigMap }}
{{- end }}

{{- define "devsync.secretName" -}}
{{- default (printf "%s-secrets" (include "devsync.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* Checksum of the rule files: pods roll when the rules change. */}}
{{- define "devsync.rulesChecksum" -}}
{{- if .Values.rules.existingConfigMap }}
{{- .Values.rules.existingConfigMap | sha256sum }}
{{- else }}
{{- include (print .Template.BasePath "/configmap-rules.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/* Pod annotations shared by every component (call with dict "root" $ "extra" .Values.worker.podAnnotations). */}}
{{- define "devsync.podAnnotations" -}}
checksum/rules: {{ include "devsync.rulesChecksum" .root }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Environment shared by every container. */}}
{{- define "devsync.env" -}}
- name: DEVSYNC_HEALTH_HOST
  value: "0.0.0.0"
- name: DEVSYNC_HEALTH_PORT
  value: {{ .Values.metrics.port | quote }}
- name: DEVSYNC_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if .Values.kafka.saslMechanism }}
- name: DEVSYNC_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
- name: DEVSYNC_KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.saslUsername | quote }}
{{- end }}
- name: DEVSYNC_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "devsync.secretName" . }}
      key: kafka-sasl-password
      optional: true
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "devsync.secretName" . }}
      key: database-password
      optional: true
{{- if .Values.tls.existingSecret }}
- name: DEVSYNC_KAFKA_SSL_CAFILE
  value: /etc/devsync/tls/ca.crt
- name: DEVSYNC_KAFKA_SSL_CERTFILE
  value: /etc/devsync/tls/tls.crt
- name: DEVSYNC_KAFKA_SSL_KEYFILE
  value: /etc/devsync/tls/tls.key
{{- end }}
{{- end }}

{{/* Probes on the health server of hub/health.py. */}}
{{- define "devsync.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end }}

{{- define "devsync.volumeMounts" -}}
- name: rules
  mountPath: /etc/devsync/rules
  readOnly: true
- name: secrets
  mountPath: /etc/devsync/secrets
  readOnly: true
{{- if .Values.tls.existingSecret }}
- name: tls
  mountPath: /etc/devsync/tls
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "devsync.volumes" -}}
- name: rules
  configMap:
    name: {{ include "devsync.rulesConfigMapName" . }}
- name: secrets
  secret:
    secretName: {{ include "devsync.secretName" . }}
    defaultMode: 0440
{{- if .Values.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{/* Pod-level settings shared by every workload (call with dict "root" $ "values" .Values.worker). */}}
{{- define "devsync.podSpec" -}}
serviceAccountName: {{ include "devsync.serviceAccountName" .root }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* connectors.yaml rendered by the chart (rules.listenerRules): listeners on every pod interface. */}}
{{- define "devsync.listenerRules" -}}
# Rendered by the devsync chart (rules.listenerRules): the ingest listeners on every interface
# of the pod; the HTTP bearer token is read from the Secret (key http-ingest-token).
version: 1
connectors:
  mllp:
    host: 0.0.0.0
    port: {{ .Values.ingest.mllpPort }}
  http:
    host: 0.0.0.0
    port: {{ .Values.ingest.httpPort }}
    token_file: /etc/devsync/secrets/http-ingest-token
{{- end }}
