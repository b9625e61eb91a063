{{/* Names and labels. */}}
{{- define "writ.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "writ.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "writ.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "writ.selectorLabels" -}}
app.kubernetes.io/name: {{ include "writ.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "writ.labels" -}}
helm.sh/chart: {{ include "writ.chart" . }}
{{ include "writ.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The Service that carries the unauthenticated ops port (/healthz, /readyz, /metrics): the
main one when it is ClusterIP, else a ClusterIP Service of its own, so that a LoadBalancer or
NodePort never exposes it outside the cluster.
*/}}
{{- define "writ.opsServiceSeparate" -}}
{{- if ne .Values.service.type "ClusterIP" }}true{{ end }}
{{- end }}
{{- define "writ.opsServiceName" -}}
{{- if include "writ.opsServiceSeparate" . }}
{{- printf "%s-ops" (include "writ.fullname" . | trunc 59 | trimSuffix "-") }}
{{- else }}
{{- include "writ.fullname" . }}
{{- end }}
{{- end }}
{{/* Labels the ServiceMonitor selects the ops Service by. */}}
{{- define "writ.opsServiceSelectorLabels" -}}
{{ include "writ.selectorLabels" . }}
{{- if include "writ.opsServiceSeparate" . }}
app.kubernetes.io/component: ops
{{- end }}
{{- end }}

{{- define "writ.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "writ.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Service's DNS names, then extraDnsNames: WRIT_SERVER_DNS_NAMES. */}}
{{- define "writ.dnsNames" -}}
{{- $svc := include "writ.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- concat $names .Values.extraDnsNames | uniq | join "," }}
{{- end }}

{{- define "writ.issuer" -}}
{{- if .Values.issuer }}
{{- .Values.issuer | trimSuffix "/" }}
{{- else if eq (int .Values.service.port) 443 }}
{{- printf "https://%s.%s.svc" (include "writ.fullname" .) .Release.Namespace }}
{{- else }}
{{- printf "https://%s.%s.svc:%d" (include "writ.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- end }}

{{/* Container paths. */}}
{{- define "writ.configDir" -}}/etc/writ/config{{- end }}
{{- define "writ.kekDir" -}}/etc/writ/kek{{- end }}
{{- define "writ.kekPreviousDir" -}}/etc/writ/kek-previous{{- end }}
{{- define "writ.upstreamCaDir" -}}/etc/writ/ca{{- end }}
{{- define "writ.generatedCaDir" -}}/var/run/writ/certs{{- end }}

{{/* Secret names: the chart's own when a value is given, else the existing one. */}}
{{- define "writ.secretName" -}}{{ include "writ.fullname" . }}{{- end }}
{{- define "writ.kekSecretName" -}}{{ include "writ.fullname" . }}-kek{{- end }}
{{- define "writ.caSecretName" -}}{{ include "writ.fullname" . }}-ca{{- end }}

{{- define "writ.databaseSecret" -}}
{{- if .Values.database.url }}{{ include "writ.secretName" . }}{{ else }}{{ .Values.database.existingSecret }}{{ end }}
{{- end }}
{{- define "writ.databaseSecretKey" -}}
{{- if .Values.database.url }}database-url{{ else }}{{ .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{- define "writ.adminTokenSecret" -}}
{{- if .Values.adminToken.value }}{{ include "writ.secretName" . }}{{ else }}{{ .Values.adminToken.existingSecret }}{{ end }}
{{- end }}
{{- define "writ.adminTokenSecretKey" -}}
{{- if .Values.adminToken.value }}admin-token{{ else }}{{ .Values.adminToken.existingSecretKey }}{{ end }}
{{- end }}

{{- define "writ.kekSecret" -}}
{{- if .Values.kek.value }}{{ include "writ.kekSecretName" . }}{{ else }}{{ .Values.kek.existingSecret }}{{ end }}
{{- end }}
{{- define "writ.kekSecretKey" -}}
{{- if .Values.kek.value }}kek{{ else }}{{ .Values.kek.existingSecretKey }}{{ end }}
{{- end }}

{{- define "writ.kekPreviousSecret" -}}
{{- if .Values.kek.previous.value }}{{ include "writ.kekSecretName" . }}{{ else }}{{ .Values.kek.previous.existingSecret }}{{ end }}
{{- end }}
{{- define "writ.kekPreviousSecretKey" -}}
{{- if .Values.kek.previous.value }}previous{{ else }}{{ .Values.kek.previous.existingSecretKey }}{{ end }}
{{- end }}

{{- define "writ.caSecret" -}}
{{- if .Values.upstreamCa.existingSecret }}{{ .Values.upstreamCa.existingSecret }}{{ else }}{{ include "writ.caSecretName" . }}{{ end }}
{{- end }}

{{/* Switches, as "true" or "". */}}
{{- define "writ.multi" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}
{{- define "writ.kekPrevious" -}}
{{- if and .Values.kek.enabled (or .Values.kek.previous.value .Values.kek.previous.existingSecret) }}true{{ end }}
{{- end }}
{{- define "writ.adminTokenSet" -}}
{{- if or .Values.adminToken.value .Values.adminToken.existingSecret }}true{{ end }}
{{- end }}
{{/* The generated CA lives on the claim: embedded, or neither kek nor upstreamCa. */}}
{{- define "writ.caOnClaim" -}}
{{- if and (not .Values.upstreamCa.enabled) (or .Values.database.embedded (not .Values.kek.enabled)) }}true{{ end }}
{{- end }}
{{- define "writ.caDir" -}}
{{- if .Values.upstreamCa.enabled }}{{ include "writ.upstreamCaDir" . }}
{{- else if include "writ.caOnClaim" . }}{{ .Values.persistence.mountPath }}/certs
{{- else }}{{ include "writ.generatedCaDir" . }}
{{- end }}
{{- end }}
{{- define "writ.claimName" -}}
{{- default (include "writ.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{- define "writ.terminationGracePeriodSeconds" -}}
{{- $least := add (int .Values.preStopSleepSeconds) (int .Values.shutdownGrace) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}{{ add $least 10 }}{{ else }}{{ int .Values.terminationGracePeriodSeconds }}{{ end }}
{{- end }}

{{/*
Combinations that cannot work stop rendering with a message saying what to change.
Included by every template that depends on them, so `helm template -s` fails too.
*/}}
{{- define "writ.validate" -}}
{{- $multi := include "writ.multi" . }}
{{- $replicas := ternary "autoscaling.enabled" (printf "replicaCount %d" (int .Values.replicaCount)) .Values.autoscaling.enabled }}
{{- if .Values.database.embedded }}
  {{- if $multi }}
    {{- fail (printf "database.embedded: the embedded database (PGlite) serves one process only, but %s asks for more than one pod: set replicaCount 1 and autoscaling.enabled false, or use an external PostgreSQL (database.embedded false, database.existingSecret)" $replicas) }}
  {{- end }}
  {{- if not .Values.persistence.enabled }}
    {{- fail "database.embedded: the embedded database keeps its files in WRIT_DATA_DIR and needs a PersistentVolumeClaim: set persistence.enabled true" }}
  {{- end }}
  {{- if ne (toString .Values.workers) "1" }}
    {{- fail (printf "database.embedded: workers %v needs an external PostgreSQL: the embedded database serves one process only; set workers 1" .Values.workers) }}
  {{- end }}
{{- else }}
  {{- if not (or .Values.database.url .Values.database.existingSecret) }}
    {{- fail "database: an external PostgreSQL needs DATABASE_URL: set database.existingSecret (a Secret holding it, key database.existingSecretKey) or database.url; or set database.embedded true for a single replica" }}
  {{- end }}
{{- end }}
{{- /* Secret values are checked here rather than in values.schema.json, whose messages would print them. */}}
{{- if and .Values.database.url (not (regexMatch "^postgres(ql)?://[^\\s]+$" .Values.database.url)) }}
  {{- fail "database.url must be a postgresql:// URL (postgresql://user:password@host:5432/database); the value is not shown" }}
{{- end }}
{{- if and .Values.adminToken.value (lt (len .Values.adminToken.value) 16) }}
  {{- fail "adminToken.value must be at least 16 characters long; the value is not shown" }}
{{- end }}
{{- range $name, $value := dict "kek.value" .Values.kek.value "kek.previous.value" .Values.kek.previous.value }}
  {{- if and $value (not (regexMatch "^([A-Za-z0-9+/]{43}=|[A-Za-z0-9_-]{43})$" (trim $value))) }}
    {{- fail (printf "%s must be 32 random bytes, base64-encoded (openssl rand -base64 32); the value is not shown" $name) }}
  {{- end }}
{{- end }}
{{- if and .Values.upstreamCa.cert (not (contains "-----BEGIN CERTIFICATE-----" .Values.upstreamCa.cert)) }}
  {{- fail "upstreamCa.cert must hold PEM certificates (the intermediate CA, then its chain up to the root)" }}
{{- end }}
{{- if and .Values.upstreamCa.key (not (regexMatch "-----BEGIN [A-Z ]*PRIVATE KEY-----" .Values.upstreamCa.key)) }}
  {{- fail "upstreamCa.key must hold a PEM private key; the value is not shown" }}
{{- end }}
{{- if and .Values.upstreamCa.jwtSigningKey (not (contains "-----BEGIN PRIVATE KEY-----" .Values.upstreamCa.jwtSigningKey)) }}
  {{- fail "upstreamCa.jwtSigningKey must hold a PKCS#8 PEM private key (EC P-256); the value is not shown" }}
{{- end }}
{{- if and $multi (not .Values.kek.enabled) (not .Values.upstreamCa.enabled) }}
  {{- fail (printf "%s: replicas must share one CA and JWT signing key: configure kek (kek.enabled with kek.existingSecret or kek.value) or upstreamCa (upstreamCa.enabled with upstreamCa.existingSecret); without either, Writ keeps a generated CA in one pod's files and serves a single replica only" $replicas) }}
{{- end }}
{{- if and .Values.persistence.enabled $multi }}
  {{- fail (printf "persistence.enabled: one PersistentVolumeClaim cannot serve %s; replicated pods keep nothing on disk (use an external PostgreSQL with kek or upstreamCa, and persistence.enabled false)" $replicas) }}
{{- end }}
{{- if and (include "writ.caOnClaim" .) (not .Values.persistence.enabled) }}
  {{- fail "kek.enabled is false and upstreamCa.enabled is false: Writ then generates its CA into WRIT_CA_DIR, which must survive restarts (the database names that CA): configure kek or upstreamCa, or set persistence.enabled true (single replica)" }}
{{- end }}
{{- if .Values.kek.enabled }}
  {{- if not (or .Values.kek.value .Values.kek.existingSecret) }}
    {{- fail "kek.enabled: set kek.existingSecret (a Secret holding the key-encryption key, key kek.existingSecretKey) or kek.value (openssl rand -base64 32)" }}
  {{- end }}
  {{- if and .Values.kek.previous.existingSecret (not .Values.kek.previous.value) (not .Values.kek.value) (eq .Values.kek.previous.existingSecret .Values.kek.existingSecret) (eq .Values.kek.previous.existingSecretKey .Values.kek.existingSecretKey) }}
    {{- fail "kek.previous names the same Secret and key as kek: during a KEK rotation, kek is the new key and kek.previous the one it replaces" }}
  {{- end }}
  {{- if and .Values.kek.value .Values.kek.previous.value (eq (trim .Values.kek.value) (trim .Values.kek.previous.value)) }}
    {{- fail "kek.previous.value equals kek.value: during a KEK rotation, kek is the new key and kek.previous the one it replaces" }}
  {{- end }}
{{- else if or .Values.kek.previous.value .Values.kek.previous.existingSecret }}
  {{- fail "kek.previous is set but kek.enabled is false: the previous KEK needs the new one (kek.existingSecret or kek.value)" }}
{{- end }}
{{- if .Values.upstreamCa.enabled }}
  {{- if and (not .Values.upstreamCa.existingSecret) (not (and .Values.upstreamCa.cert .Values.upstreamCa.key)) }}
    {{- fail "upstreamCa.enabled: set upstreamCa.existingSecret (a Secret with ca.crt and ca.key) or both upstreamCa.cert and upstreamCa.key" }}
  {{- end }}
  {{- /* The Secret is mounted read-only as WRIT_CA_DIR: without a KEK to seal a generated JWT key, Writ could not write one there. */}}
  {{- if and (not .Values.upstreamCa.existingSecret) (not .Values.kek.enabled) (not .Values.upstreamCa.jwtSigningKey) }}
    {{- fail "upstreamCa: without kek, the read-only CA Secret must hold jwt-signing.key (Writ cannot generate it there, and replicas must share it): set upstreamCa.jwtSigningKey (EC P-256, PKCS#8 PEM) or enable kek" }}
  {{- end }}
{{- end }}
{{- /* A PodDisruptionBudget that allows no eviction blocks every node drain for good. */}}
{{- if .Values.podDisruptionBudget.enabled }}
  {{- $pdb := .Values.podDisruptionBudget }}
  {{- $fewest := ternary (int .Values.autoscaling.minReplicas) (int .Values.replicaCount) .Values.autoscaling.enabled }}
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
    {{- if or (eq (toString $pdb.minAvailable) "100%") (and (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) $fewest)) }}
      {{- fail (printf "podDisruptionBudget.minAvailable %v with %s would allow no eviction and block node drains: set it below the pod count, or use maxUnavailable" $pdb.minAvailable (ternary (printf "autoscaling.minReplicas %d" $fewest) $replicas .Values.autoscaling.enabled)) }}
    {{- end }}
  {{- else if or (eq (toString $pdb.maxUnavailable) "0") (eq (toString $pdb.maxUnavailable) "0%") }}
    {{- fail "podDisruptionBudget.maxUnavailable 0 would allow no eviction and block node drains: set it to 1 or more" }}
  {{- end }}
{{- end }}
{{- /* With fsGroupChangePolicy Always the kubelet makes every file on the claim group-writable at each mount: ca.key 0660, which Writ refuses. */}}
{{- if and (or .Values.database.embedded (include "writ.caOnClaim" .)) .Values.podSecurityContext.fsGroup (ne (toString .Values.podSecurityContext.fsGroupChangePolicy) "OnRootMismatch") }}
  {{- fail "podSecurityContext.fsGroupChangePolicy must be OnRootMismatch with persistence: otherwise the kubelet makes every file on the claim group-writable at each mount, and Writ refuses to start with a group-writable ca.key" }}
{{- end }}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
  {{- $least := add (int .Values.preStopSleepSeconds) (int .Values.shutdownGrace) }}
  {{- if lt (int .Values.terminationGracePeriodSeconds) (int $least) }}
    {{- fail (printf "terminationGracePeriodSeconds %d is shorter than preStopSleepSeconds + shutdownGrace (%d): Kubernetes would kill pods in the middle of draining" (int .Values.terminationGracePeriodSeconds) (int $least)) }}
  {{- end }}
{{- end }}
{{- $managed := list "host" "port" "ops_host" "ops_port" "trust_domain" "issuer" "server_dns_names" "ca_dir" "data_dir" "kek_file" "kek_previous_file" "ca_replace" "log_level" "workers" "shutdown_grace" }}
{{- range $key, $_ := .Values.config }}
  {{- if has $key (list "database_url" "admin_token") }}
    {{- fail (printf "config.%s: a secret does not belong in the ConfigMap: use %s" $key (ternary "database.existingSecret" "adminToken.existingSecret" (eq $key "database_url"))) }}
  {{- end }}
  {{- if has $key $managed }}
    {{- fail (printf "config.%s: the chart sets this setting from its own values (see values.yaml); remove it from config" $key) }}
  {{- end }}
{{- end }}
{{- if and .Values.policy (hasKey .Values.config "policy_file") }}
  {{- fail "policy and config.policy_file are both set: give the Cedar policies in one of them" }}
{{- end }}
{{- if hasKey .Values.configFiles "writ.yaml" }}
  {{- fail "configFiles: writ.yaml is the config file itself: use config" }}
{{- end }}
{{- range $name, $_ := .Values.env }}
  {{- if has $name (list "DATABASE_URL" "WRIT_ADMIN_TOKEN" "WRIT_KEK_FILE" "WRIT_KEK_PREVIOUS_FILE" "WRIT_CONFIG" "WRIT_HOST" "WRIT_PORT" "WRIT_OPS_HOST" "WRIT_OPS_PORT" "WRIT_CA_DIR" "WRIT_DATA_DIR" "WRIT_CA_REPLACE" "WRIT_TRUST_DOMAIN" "WRIT_ISSUER" "WRIT_SERVER_DNS_NAMES" "WRIT_LOG_LEVEL" "WRIT_WORKERS" "WRIT_SHUTDOWN_GRACE") }}
    {{- fail (printf "env.%s: the chart sets this setting from its own values or Secrets (see values.yaml); remove it from env" $name) }}
  {{- end }}
{{- end }}
{{- end }}
