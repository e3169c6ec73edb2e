{{/* Name of the release's objects: <release>-oapip, or the release name if it has "oapip". */}}
{{- define "oapip.fullname" -}}
{{- if contains "oapip" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-oapip" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "oapip.labels" -}}
app.kubernetes.io/name: oapip
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include "oapip.selector" (list . "gateway") */}}
{{- define "oapip.selector" -}}
app.kubernetes.io/name: oapip
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "oapip.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag | quote }}
{{- end -}}

{{- define "oapip.secretName" -}}
{{- default (printf "%s-secrets" (include "oapip.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "oapip.prefectApiUrl" -}}
{{ printf "http://%s-prefect:%d/api" (include "oapip.fullname" .) (int .Values.prefect.port) }}
{{- end -}}

{{- define "oapip.workPool" -}}
{{- if eq .Values.worker.type "kubernetes" -}}
{{ printf "%s-kubernetes" .Values.prefect.workPool }}
{{- else -}}
{{ .Values.prefect.workPool }}
{{- end -}}
{{- end -}}

{{/* Pod-level security: the engine's image runs as uid 10001 (Dockerfile). */}}
{{- define "oapip.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "oapip.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: false
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* Environment of the gateway, the workers and setup: engine settings and secrets. */}}
{{- define "oapip.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "oapip.fullname" . }}-config
env:
{{- range $key := list "S3_ACCESS_KEY" "S3_SECRET_KEY" "STAGEIN_S3_ACCESS_KEY" "STAGEIN_S3_SECRET_KEY" }}
  - name: {{ $key }}
    valueFrom:
      secretKeyRef:
        name: {{ include "oapip.secretName" $ }}
        key: {{ $key }}
        optional: true
{{- end }}
{{- end -}}
