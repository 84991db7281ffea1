#!/usr/bin/env bash
# `make run`: a cluster (the one $KUBECONFIG points at when it answers, else the embedded
# local control plane), the CRDs, examples/, then the operator in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
source cluster/versions.env
cache="${FLOW_CACHE:-$HOME/.cache/flow-operator}"
local_kubeconfig="$PWD/.cluster/kubeconfig"
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
  python3 cluster/localcluster.py up --dir .cluster
fi
k() { "$kubectl_bin" "$@"; }

say "installing the CRDs"
k apply --server-side --force-conflicts -f crds/ >/dev/null
k wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
say "applying examples/"
k apply -f examples/

cat <<EOF

Watch it from another terminal:
  KUBECONFIG=$KUBECONFIG $kubectl_bin get workflows -w
  KUBECONFIG=$KUBECONFIG $kubectl_bin get flowruns -w
Dashboard and status API: http://127.0.0.1:${FLOW_HTTP_PORT:-8080}/   metrics: http://127.0.0.1:${FLOW_METRICS_PORT:-9090}/metrics
Stop with Ctrl-C; \`make cluster-down\` stops the local cluster.

EOF
say "starting the operator (Ctrl-C stops it)"
exec .venv/bin/python -m flow_operator run --all-namespaces
