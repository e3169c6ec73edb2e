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

{{/* Secret settings given key by key, each optional: include "oapip.env.secrets"
(list . "KEY KEY"), after the env: of "oapip.env.client". */}}
{{- define "oapip.env.secrets" -}}
{{- $root := index . 0 }}
{{- range $key := splitList " " (index . 1) }}
  - name: {{ $key }}
    valueFrom:
      secretKeyRef:
        name: {{ include "oapip.secretName" $root }}
        key: {{ $key }}
        optional: true
{{- end }}
{{- end -}}

{{/* Environment of what runs flows (the fast worker): also every secret setting. */}}
{{- define "oapip.env.engine" -}}
{{ include "oapip.env.client" . }}
{{- include "oapip.env.secrets" (list . (include "oapip.secretSettings" .)) }}
{{- end -}}

{{/* The secret settings removing a job's results needs (blocks/result_stores.py): the
shared bucket's keys and the Workspace API's token, which gives each workspace's keys. */}}
{{- define "oapip.removalSecrets" -}}
OAPIP_WORKSPACE_API_TOKEN S3_ACCESS_KEY S3_SECRET_KEY
{{- end -}}

{{/* Whether a value is given: set, and not null or empty (0 is given). */}}
{{- define "oapip.given" -}}
{{- if and (not (kindIs "invalid" .)) (ne (toString .) "") }}true{{ end -}}
{{- end -}}

{{/* Whether the housekeeping Deployment runs: housekeeping.enabled, or when it is unset
(null), whether retention.days is given. */}}
{{- define "oapip.housekeeping" -}}
{{- $on := .Values.housekeeping.enabled }}
{{- if kindIs "invalid" $on }}
{{- $on = true }}
{{- end }}
{{- if $on }}true{{ end -}}
{{- end -}}

{{/* The housekeeping pod's probe: Prefect's runner webserver (on loopback) answers
/health while the runner polls Prefect (within PREFECT_RUNNER_SERVER_MISSED_POLLS_TOLERANCE
polls of PREFECT_RUNNER_POLL_FREQUENCY: 2 x 10 s). */}}
{{- define "oapip.runnerProbe" -}}
import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health' % os.environ['PREFECT_RUNNER_SERVER_PORT'], timeout=5).close()
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

{{/* Whether the Prefect server runs scaled out: N API pods and one services pod. */}}
{{- define "oapip.scaledOut" -}}
{{- if gt (int .Values.prefect.replicas) 1 }}true{{ end -}}
{{- end -}}

{{/* The Prefect server's messaging, ordering and leases on Redis when scaled out: the
settings stack/scaleout.redis_env gives `oapip up --prefect-replicas N`, from redis.url
(Docket stays in each process there too). */}}
{{- define "oapip.env.redis" -}}
{{- $url := urlParse .Values.redis.url }}
{{- $host := splitList ":" $url.host }}
{{- $port := ternary (last $host) "6379" (gt (len $host) 1) }}
- name: PREFECT_MESSAGING_BROKER
  value: prefect_redis.messaging
- name: PREFECT_MESSAGING_CACHE
  value: prefect_redis.messaging
- name: PREFECT_SERVER_EVENTS_CAUSAL_ORDERING
  value: prefect_redis.ordering
- name: PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE
  value: prefect_redis.lease_storage
- name: PREFECT_REDIS_MESSAGING_HOST
  value: {{ first $host | quote }}
- name: PREFECT_REDIS_MESSAGING_PORT
  value: {{ $port | quote }}
- name: PREFECT_REDIS_MESSAGING_DB
  value: {{ trimPrefix "/" $url.path | default "0" | quote }}
- name: PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE
  value: prefect_redis.cleanup_queue
{{- end -}}

{{/* The Prefect server's own settings, of its API pods and its services pod. */}}
{{- define "oapip.env.prefectServer" -}}
- name: PREFECT_API_DATABASE_CONNECTION_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "oapip.secretName" . }}
      key: DATABASE_URL
- name: PREFECT_HOME
  value: /var/lib/oapip/prefect
- name: PREFECT_SERVER_ANALYTICS_ENABLED
  value: "false"
- name: DO_NOT_TRACK
  value: "1"
{{- /* The lean server of every stack the engine starts (stack/tuning.py LEAN_SERVER; a
test checks they match; README "A lean Prefect server" says what each costs the UI). */}}
- name: PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE
  value: "100"
- name: PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE
  value: "100"
- name: PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL
  value: "1"
- name: PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE
  value: "200"
- name: PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE
  value: "100"
- name: PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL
  value: "1"
- name: PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED
  value: "false"
- name: PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED
  value: "false"
- name: PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED
  value: "false"
{{- if include "oapip.scaledOut" . }}
{{ include "oapip.env.redis" . }}
{{- end }}
{{- end -}}

{{/* The services pod's probe: PostgreSQL (its database URL) and Redis take a TCP
connection within 5 s. */}}
{{- define "oapip.reachProbe" -}}
import os, socket, urllib.parse as u; d = u.urlparse(os.environ['PREFECT_API_DATABASE_CONNECTION_URL']); [socket.create_connection(a, 5).close() for a in ((d.hostname, d.port or 5432), (os.environ['PREFECT_REDIS_MESSAGING_HOST'], int(os.environ['PREFECT_REDIS_MESSAGING_PORT'])))]
{{- end -}}
