{{/* TLS of the API listener and /metrics (api.tls, docs/security.md). */}}

{{- define "flow-operator.tlsDir" -}}
/etc/flow-operator/tls
{{- end -}}

{{/* The kubernetes.io/tls Secret mounted: api.tls.secretName, or <fullname>-tls. */}}
{{- define "flow-operator.tlsSecret" -}}
{{- if .Values.api.tls.enabled -}}
{{- if and .Values.api.tls.certManager.enabled (not .Values.api.tls.certManager.issuerRef.name) -}}
{{- fail "api.tls.certManager.enabled needs api.tls.certManager.issuerRef.name (an Issuer or ClusterIssuer of cert-manager)" -}}
{{- end -}}
{{- .Values.api.tls.secretName | default (printf "%s-tls" (include "flow-operator.fullname" .)) -}}
{{- else if .Values.api.tls.certManager.enabled -}}
{{- fail "api.tls.certManager.enabled needs api.tls.enabled: the certificate is for the TLS listener" -}}
{{- end -}}
{{- end -}}

{{/* The names the certificate is for: the Service's, then api.tls.certManager.dnsNames. */}}
{{- define "flow-operator.tlsNames" -}}
{{- $name := include "flow-operator.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.cluster.local" $name $ns) -}}
{{- toYaml (concat $names .Values.api.tls.certManager.dnsNames) -}}
{{- end -}}

{{/* A probe of the values, over HTTPS when TLS is on: (dict "probe" P "tls" BOOL). */}}
{{- define "flow-operator.probe" -}}
{{- $probe := deepCopy .probe -}}
{{- if and .tls $probe.httpGet -}}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- toYaml $probe -}}
{{- end -}}
