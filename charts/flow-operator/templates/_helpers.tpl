{{/* Names and labels shared by every template. */}}

{{- define "flow-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flow-operator.fullname" -}}
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

{{- define "flow-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flow-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flow-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "flow-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "flow-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flow-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Leader election is needed as soon as two replicas could act. */}}
{{- define "flow-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{- define "flow-operator.namespaced" -}}
{{- if eq .Values.watch.scope "namespaced" -}}
{{- if not .Values.watch.namespaces -}}
{{- fail "watch.scope=namespaced needs at least one namespace in watch.namespaces" -}}
{{- end -}}
true
{{- else if ne .Values.watch.scope "cluster" -}}
{{- fail (printf "watch.scope must be cluster or namespaced, not %q" .Values.watch.scope) -}}
{{- end -}}
{{- end -}}

{{/* The RBAC rules are in _rbac_rules.tpl, generated from operator/flow_operator/rbac.py. */}}

{{/* Where the run history goes: none, postgresql or sqlite. SQLite is one file on one
claim: a second replica (or a standby under leader election) cannot share it, so the
chart refuses the combination rather than lose or corrupt history. */}}
{{- define "flow-operator.historyBackend" -}}
{{- if not .Values.history.enabled -}}
none
{{- else if .Values.history.postgresql.existingSecret -}}
postgresql
{{- else if include "flow-operator.leaderElection" . -}}
{{- fail (printf "history on SQLite needs one replica: set history.postgresql.existingSecret for HA (replicaCount=%v, leaderElection.enabled=%v)" .Values.replicaCount .Values.leaderElection.enabled) -}}
{{- else -}}
sqlite
{{- end -}}
{{- end -}}

{{- define "flow-operator.historyClaim" -}}
{{- default (printf "%s-history" (include "flow-operator.fullname" .)) .Values.history.persistence.existingClaim -}}
{{- end -}}
