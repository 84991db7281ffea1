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

{{/*
The rules on namespaced objects, exactly what the code calls (docs/operations.md#rbac has
one line per rule, with the module that needs it). Granted cluster-wide by a ClusterRole,
or by a Role in each watched namespace.
*/}}
{{- define "flow-operator.rules" -}}
# Workflows: watched into kopf indexes (and listed by the HTTP API for readiness).
- apiGroups: [flowops.io]
  resources: [workflows]
  verbs: [list, watch]
# FlowRuns: watched; created (reruns, sub-flow runs) and patched (cancel requests).
- apiGroups: [flowops.io]
  resources: [flowruns]
  verbs: [list, watch, create, patch]
# Their status is written by the reconcilers (the status subresource).
- apiGroups: [flowops.io]
  resources: [workflows/status, flowruns/status]
  verbs: [patch]
# A Workflow's services: server-side applied (create + patch), deleted on unpublish.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, patch, delete]
# Rollout state: which ReplicaSet is the latest, which pods run the latest spec.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# Task logs: streamed by the HTTP API on request; a failed task's last lines.
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# A FlowRun's tasks: created once under a deterministic name, deleted on cancel.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, delete]
# Events about Workflows and FlowRuns (color changes, invalid specs, transitions); listed
# (by field selector) only for a Job without pods, to see a quota refusing them.
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
# API keys: the Secret a Workflow names in spec.apiKeySecretRef (any name: get only).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}

{{- define "flow-operator.peeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [{{ . }}]
  verbs: [get, list, watch, patch]
{{- end -}}
