{{/* Names and labels. With the release name "vipwarden" the objects are called vipwarden-controller, -agent... */}}
{{- define "vipwarden.fullname" -}}
{{- if contains "vipwarden" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-vipwarden" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "vipwarden.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* vipwarden.labels: pass (dict "ctx" $ "component" "controller"). */}}
{{- define "vipwarden.selector" -}}
app.kubernetes.io/name: vipwarden
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vipwarden.labels" -}}
{{ include "vipwarden.selector" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end -}}

{{- define "vipwarden.tlsSecret" -}}
{{ .Values.etcd.tls.existingSecret | default (printf "%s-etcd-tls" (include "vipwarden.fullname" .)) }}
{{- end -}}

{{/* The etcd section of both configs. */}}
{{- define "vipwarden.etcdConfig" -}}
endpoints: {{ .Values.etcd.endpoints | toJson }}
prefix: {{ .Values.etcd.prefix }}
{{- if .Values.etcd.tls.enabled }}
tls:
  ca: /etc/vipwarden-tls/ca.crt
  {{- if .Values.etcd.tls.clientCertificate }}
  cert: /etc/vipwarden-tls/tls.crt
  key: /etc/vipwarden-tls/tls.key
  {{- end }}
{{- end }}
{{- end -}}
