#!/usr/bin/env bash
# `make run`: a cluster (the one $KUBECONFIG points at when it answers, else the embedded
# local control plane), the CRDs, examples/, a development ServiceAccount to sign in with,
# then the operator in the foreground with --auth-mode kubernetes (docs/security.md).
# CLUSTER_DIR (default .cluster) is where the local control plane keeps its state.
set -euo pipefail
cd "$(dirname "$0")/.."
source cluster/versions.env
cache="${FLOW_CACHE:-$HOME/.cache/flow-operator}"
cluster_dir="${CLUSTER_DIR:-.cluster}"
case "$cluster_dir" in /*) ;; *) cluster_dir="$PWD/$cluster_dir" ;; esac
local_kubeconfig="$cluster_dir/kubeconfig"
dev_namespace="${FLOW_DEV_NAMESPACE:-default}"  # where examples/ go (no namespace of their own)
dev_account=flow-dev
http_port="${FLOW_HTTP_PORT:-8080}"
export KUBECONFIG="${KUBECONFIG:-$local_kubeconfig}"

say() { printf '==> %s\n' "$*"; }

kubectl_bin="$cache/bin/kubernetes-$KUBERNETES_VERSION/kubectl"
command -v kubectl >/dev/null && [ ! -x "$kubectl_bin" ] && kubectl_bin="$(command -v kubectl)"

reachable() { [ -x "$kubectl_bin" ] && "$kubectl_bin" version --request-timeout=3s >/dev/null 2>&1; }

if reachable; then
  say "using the cluster of KUBECONFIG=$KUBECONFIG ($("$kubectl_bin" config current-context))"
else
  export KUBECONFIG="$local_kubeconfig"
  say "building the local control plane if needed (first time: ~15 min on 2 cores, then cached)"
  bash cluster/build.sh cluster
  kubectl_bin="$cache/bin/kubernetes-$KUBERNETES_VERSION/kubectl"
  python3 cluster/localcluster.py up --dir "$cluster_dir"
fi
k() { "$kubectl_bin" "$@"; }

say "installing the CRDs"
k apply --server-side --force-conflicts -f crds/ >/dev/null
k wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
say "applying examples/ in namespace $dev_namespace"
k create namespace "$dev_namespace" --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -n "$dev_namespace" -f examples/
# The built-in view/edit roles learn the flowops.io kinds (aggregation), and a development
# ServiceAccount gets edit in the examples' namespace: its token signs in to the dashboard.
say "ServiceAccount $dev_namespace/$dev_account with the edit role there (to sign in with)"
k apply -f cluster/flow-roles.yaml >/dev/null
k -n "$dev_namespace" create serviceaccount "$dev_account" --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$dev_namespace" create rolebinding "$dev_account-edit" --clusterrole=edit \
  --serviceaccount="$dev_namespace:$dev_account" --dry-run=client -o yaml | k apply -f - >/dev/null

cat <<EOF

Watch it from another terminal:
  KUBECONFIG=$KUBECONFIG $kubectl_bin get workflows -w
  KUBECONFIG=$KUBECONFIG $kubectl_bin get flowruns -w
Dashboard and status API: http://127.0.0.1:$http_port/   metrics: http://127.0.0.1:${FLOW_METRICS_PORT:-9090}/metrics
Sign in at http://127.0.0.1:$http_port/ with the token this prints (valid 24 h):
  $kubectl_bin --kubeconfig $KUBECONFIG create token $dev_account -n $dev_namespace --duration=24h
Stop with Ctrl-C; \`make cluster-down\` stops the local cluster.

EOF
say "starting the operator (Ctrl-C stops it)"
exec .venv/bin/python -m flow_operator run --all-namespaces --auth-mode kubernetes
