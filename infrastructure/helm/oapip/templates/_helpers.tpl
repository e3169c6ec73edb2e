{{/* Name of the release's objects: <release>-oapip, or the release name if it has "oapip". */}}
{{- define "oapip.fullname" -}}
{{- if contains "oapip" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-oapip" .Release.Name | trunc 40 | trimSuffix "-" -}}
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

{{- define "oapip.dataClaim" -}}
{{- default (printf "%s-data" (include "oapip.fullname" .)) .Values.data.existingClaim -}}
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

{{/* ServiceAccount of one component: include "oapip.account" (list . "gateway") */}}
{{- define "oapip.account" -}}
{{- printf "%s-%s" (include "oapip.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{/* The account that runs flows, and so creates job namespaces: the fast worker, or the
flow-run Jobs of the kubernetes worker. */}}
{{- define "oapip.flowAccount" -}}
{{- include "oapip.account" (list . (ternary "flow-run" "worker" (eq .Values.worker.type "kubernetes"))) -}}
{{- end -}}

{{/* Start of job namespaces' names: short enough that `<prefix>-<process>-<job UUID>`
keeps it whole within 63 characters (blocks/calrissian_manifests.namespace_name). */}}
{{- define "oapip.namespacePrefix" -}}
{{- default (include "oapip.fullname" .) .Values.calrissian.namespacePrefix | trunc 20 | trimSuffix "-" -}}
{{- end -}}

{{/* A cluster-scoped name, unique per release and namespace. */}}
{{- define "oapip.clusterName" -}}
{{- printf "%s-%s-%s" (include "oapip.fullname" (index . 0)) (index . 0).Release.Namespace (index . 1) -}}
{{- end -}}

{{/* Pod-level security, Pod Security "restricted": the engine's image runs as uid 10001. */}}
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
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* The engine's secret settings (core/settings: every SecretStr field, by its variable). */}}
{{- define "oapip.secretSettings" -}}
OAPIP_TOIL_WES_PASSWORD OAPIP_WORKSPACE_API_TOKEN S3_ACCESS_KEY S3_SECRET_KEY STAGEIN_S3_ACCESS_KEY STAGEIN_S3_SECRET_KEY
{{- end -}}

{{/* Environment of a Prefect client (gateway, setup, Prefect's worker): the engine's
settings and the Prefect API credentials, no other secret. */}}
{{- define "oapip.env.client" -}}
envFrom:
  - configMapRef:
      name: {{ include "oapip.fullname" . }}-config
env:
  - name: PREFECT_API_AUTH_STRING
    valueFrom:
      secretKeyRef:
        name: {{ include "oapip.secretName" . }}
        key: PREFECT_API_AUTH_STRING
{{- end -}}

{{/* Environment of what runs flows (the fast worker): also every secret setting. */}}
{{- define "oapip.env.engine" -}}
{{ include "oapip.env.client" . }}
{{- range $key := splitList " " (include "oapip.secretSettings" .) }}
  - name: {{ $key }}
    valueFrom:
      secretKeyRef:
        name: {{ include "oapip.secretName" $ }}
        key: {{ $key }}
        optional: true
{{- end }}
{{- end -}}

{{/* What the engine writes: /tmp and OAPIP_HOME on emptyDirs (the root is read-only),
results on the shared data volume. include "oapip.volumeMounts" (list . readOnlyData) */}}
{{- define "oapip.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: home
    mountPath: /var/lib/oapip
  - name: data
    mountPath: /var/lib/oapip/data
    readOnly: {{ index . 1 }}
{{- end -}}

{{- define "oapip.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  - name: home
    emptyDir: {}
  - name: data
    persistentVolumeClaim:
      claimName: {{ include "oapip.dataClaim" . }}
{{- end -}}
