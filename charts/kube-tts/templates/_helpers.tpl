{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "kube-tts.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-tts.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kube-tts.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kube-tts.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>", e.g. kube-tts-router */}}
{{- define "kube-tts.component.fullname" -}}
{{- printf "%s-%s" (include "kube-tts.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-tts.apiKeysSecret" -}}
{{- default (printf "%s-api-keys" (include "kube-tts.fullname" .)) .Values.apiKeys.existingSecret }}
{{- end }}

{{- /* TtsJobs (ADR 0050): the jobs volume's claim and the Secret holding the renderers' API key */}}
{{- define "kube-tts.jobsClaim" -}}
{{- default (printf "%s-jobs" .Release.Name) .Values.jobs.persistence.existingClaim }}
{{- end }}

{{- define "kube-tts.rendererKeySecret" -}}
{{- printf "%s-renderer-key" (include "kube-tts.fullname" .) }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------ */}}

{{- define "kube-tts.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-tts.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kube-tts.labels" -}}
{{ include "kube-tts.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kube-tts
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Images: registry/repository:tag, the tag defaulting to the chart's appVersion --------- */}}

{{- define "kube-tts.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := default .root.Values.image.tag .image.tag | default .root.Chart.AppVersion -}}
{{- $name := .image.repository -}}
{{- if $registry }}{{ $name = printf "%s/%s" $registry $name }}{{ end -}}
{{- if .image.digest }}{{ printf "%s:%s@%s" $name $tag .image.digest }}{{ else }}{{ printf "%s:%s" $name $tag }}{{ end }}
{{- end }}

{{/* Security: every pod passes the restricted Pod Security level ------------------------ */}}

{{- define "kube-tts.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kube-tts.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Namespaces the operator reconciles (and needs RBAC in) */}}
{{- define "kube-tts.operatorNamespaces" -}}
{{- if .Values.operator.watchAllNamespaces }}{{ else if .Values.operator.watchNamespaces }}{{ join "," .Values.operator.watchNamespaces }}{{ else }}{{ .Release.Namespace }}{{ end }}
{{- end }}

{{/* What the operator may do where it reconciles: its custom resources, their children, the clips. */}}
{{- define "kube-tts.operatorRules" -}}
- apiGroups: [tts.kubetts.io]
  resources: [ttsdeployments, ttsvoices, ttsjobs]
  verbs: [get, list, watch, patch, update]
- apiGroups: [tts.kubetts.io]
  resources: [ttsdeployments/status, ttsvoices/status, ttsjobs/status]
  verbs: [get, patch, update]
- apiGroups: [tts.kubetts.io]
  resources: [ttsjobs/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
