{{/*
Names are fixed, not derived from the release name: the CRDs, the admission policies and the
agents' Lease namespace are cluster-wide facts, so one kubenova runs per cluster.
*/}}
{{- define "kubenova.systemNamespace" -}}kubenova-system{{- end -}}
{{- define "kubenova.operatorName" -}}kubenova-operator{{- end -}}
{{- define "kubenova.agentName" -}}kubenova-agent{{- end -}}

{{/* The one namespace the chart installs into (the agents' Leases live there). */}}
{{- define "kubenova.checkNamespace" -}}
{{- if ne .Release.Namespace (include "kubenova.systemNamespace" .) -}}
{{- fail (printf "install kubenova into the namespace %s (helm install -n %s --create-namespace): the host agents' heartbeat Leases live there, not in %q" (include "kubenova.systemNamespace" .) (include "kubenova.systemNamespace" .) .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{- define "kubenova.labels" -}}
app.kubernetes.io/part-of: kubenova
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kubenova.operatorSelector" -}}
app.kubernetes.io/name: kubenova-operator
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubenova.openstackApiSelector" -}}
app.kubernetes.io/name: kubenova-openstack-api
app.kubernetes.io/component: openstack-api
{{- end -}}

{{- define "kubenova.agentSelector" -}}
app.kubernetes.io/name: kubenova-agent
app.kubernetes.io/component: agent
{{- end -}}

{{/* image reference: registry/name then @digest or :tag (default appVersion) */}}
{{- define "kubenova.image" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $img := $root.Values.image -}}
{{- if $img.digest -}}
{{- printf "%s/%s@%s" $img.registry $name $img.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $img.registry $name (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kubenova.serviceAccountUser" -}}
{{- $root := index . 0 -}}
{{- printf "system:serviceaccount:%s:%s" $root.Release.Namespace (index . 1) -}}
{{- end -}}

{{/* Name of the Secret holding the PostgreSQL URL. */}}
{{- define "kubenova.databaseSecret" -}}
{{- default "kubenova-database" .Values.database.postgresql.existingSecret -}}
{{- end -}}

{{/* Name of the Secret holding the default object store's keys ("" when none). */}}
{{- define "kubenova.objectStoreSecret" -}}
{{- if .Values.objectStore.existingSecret -}}
{{- .Values.objectStore.existingSecret -}}
{{- else if .Values.objectStore.accessKey -}}
kubenova-object-store
{{- end -}}
{{- end -}}

{{- define "kubenova.sqliteClaim" -}}
{{- default "kubenova-inventory" .Values.database.sqlite.existingClaim -}}
{{- end -}}

{{/* Environment of the operator and of its migration init container. */}}
{{- define "kubenova.databaseEnv" -}}
- name: KUBENOVA_DATABASE_URL
{{- if eq .Values.database.type "sqlite" }}
  value: sqlite:////var/lib/kubenova/inventory.db
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ include "kubenova.databaseSecret" . }}
      key: {{ .Values.database.postgresql.secretKey }}
{{- end }}
{{- end -}}

{{/* A container that cannot gain privileges, on a read-only root, with no capabilities. */}}
{{- define "kubenova.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}
