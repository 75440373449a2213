{{/* The name of every object: <release>-packr. */}}
{{- define "packr.fullname" -}}
{{- printf "%s-packr" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select this release's pods. */}}
{{- define "packr.selectorLabels" -}}
app.kubernetes.io/name: packr
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "packr.labels" -}}
{{ include "packr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* "true" when PostgreSQL is configured (a URL or an existing Secret holding one). */}}
{{- define "packr.postgres" -}}
{{- if or .Values.postgres.url .Values.postgres.existingSecret }}true{{ end -}}
{{- end -}}

{{/*
"true" when the chart renders the Deployment: PostgreSQL and S3 both configured. PostgreSQL
without S3 is refused: several instances cannot share tarballs kept on a local disk.
*/}}
{{- define "packr.clustered" -}}
{{- if include "packr.postgres" . -}}
{{- if not .Values.s3.bucket -}}
{{- fail "postgres is configured but s3.bucket is not: instances on a shared PostgreSQL database keep tarballs in an S3 bucket (set s3.bucket), or leave postgres empty for the single-instance SQLite StatefulSet" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The Secret holding PACKR_JWT_SECRET, PACKR_SESSION_SECRET and PACKR_SECRET_KEY, if any. */}}
{{- define "packr.secretsName" -}}
{{- if .Values.secrets.existingSecret -}}
{{ .Values.secrets.existingSecret }}
{{- else -}}
{{ include "packr.fullname" . }}-secrets
{{- end -}}
{{- end -}}

{{/*
"true" when the pods mount a secrets Secret: always for the Deployment (instances must share
their secrets), and for the StatefulSet only when secrets are provided (otherwise Packr
generates them on its volume, as it always has).
*/}}
{{- define "packr.mountSecrets" -}}
{{- $s := .Values.secrets -}}
{{- if or (include "packr.clustered" .) $s.existingSecret $s.jwtSecret $s.sessionSecret $s.secretKey }}true{{ end -}}
{{- end -}}

{{/* The Secret holding the database URL, and its key. */}}
{{- define "packr.databaseSecretName" -}}
{{- if .Values.postgres.existingSecret -}}
{{ .Values.postgres.existingSecret }}
{{- else -}}
{{ include "packr.fullname" . }}-database
{{- end -}}
{{- end -}}

{{/* The container and pod settings the StatefulSet and the Deployment share. */}}
{{- define "packr.container" -}}
- name: packr
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["serve"]
  env:
    - { name: PACKR_LISTEN, value: "0.0.0.0:{{ .Values.service.port }}" }
    - { name: PACKR_DATA_DIR, value: /data }
    - { name: PACKR_PUBLIC_URL, value: {{ .Values.publicUrl | quote }} }
    - { name: PACKR_ANONYMOUS_READ, value: {{ .Values.anonymousRead | quote }} }
    - { name: PACKR_TRUSTED_PROXIES, value: {{ .Values.trustedProxies | quote }} }
    {{- if .Values.region }}
    - { name: PACKR_REGION, value: {{ .Values.region | quote }} }
    {{- end }}
    {{- if include "packr.mountSecrets" . }}
    - { name: PACKR_SECRETS_DIR, value: /etc/packr/secrets }
    {{- end }}
    {{- if include "packr.postgres" . }}
    - name: PACKR_DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "packr.databaseSecretName" . }}
          key: {{ .Values.postgres.existingSecretKey | default "PACKR_DATABASE_URL" }}
    {{- end }}
    {{- if .Values.s3.bucket }}
    - { name: PACKR_STORAGE, value: s3 }
    - { name: PACKR_S3_BUCKET, value: {{ .Values.s3.bucket | quote }} }
    - { name: PACKR_S3_REGION, value: {{ .Values.s3.region | quote }} }
    - { name: PACKR_S3_PATH_STYLE, value: {{ .Values.s3.pathStyle | quote }} }
    {{- if .Values.s3.endpoint }}
    - { name: PACKR_S3_ENDPOINT, value: {{ .Values.s3.endpoint | quote }} }
    {{- end }}
    {{- if .Values.s3.prefix }}
    - { name: PACKR_S3_PREFIX, value: {{ .Values.s3.prefix | quote }} }
    {{- end }}
    {{- if .Values.s3.existingSecret }}
    - name: PACKR_S3_ACCESS_KEY_ID
      valueFrom:
        secretKeyRef: { name: {{ .Values.s3.existingSecret | quote }}, key: {{ .Values.s3.accessKeyIdKey | quote }} }
    - name: PACKR_S3_SECRET_ACCESS_KEY
      valueFrom:
        secretKeyRef: { name: {{ .Values.s3.existingSecret | quote }}, key: {{ .Values.s3.secretAccessKeyKey | quote }} }
    {{- end }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - { name: http, containerPort: {{ .Values.service.port }} }
  readinessProbe:
    httpGet: { path: /-/health/ready, port: http }
    periodSeconds: 5
    failureThreshold: 2
  livenessProbe:
    httpGet: { path: /-/health/live, port: http }
    periodSeconds: 10
    failureThreshold: 3
  {{- if .Values.preStopSleepSeconds }}
  lifecycle:
    # Keeps serving while the endpoint is removed from the Service and the ingress, so a
    # rolling restart fails no request; SIGTERM then drains in-flight requests.
    preStop:
      exec: { command: ["sleep", {{ .Values.preStopSleepSeconds | toString | quote }}] }
  {{- end }}
  resources: {{- toYaml .Values.resources | nindent 4 }}
  volumeMounts:
    {{- if not (include "packr.clustered" .) }}
    - { name: data, mountPath: /data }
    {{- end }}
    {{- if include "packr.mountSecrets" . }}
    - { name: secrets, mountPath: /etc/packr/secrets, readOnly: true }
    {{- end }}
{{- end -}}
