#!/usr/bin/env bash
# Build and cache the local control plane from Go modules (no Docker, no downloads
# other than the Go module proxy). Skips every binary that is already cached.
#
#   cluster/build.sh            build what is missing, print the bin directory
#   FLOW_CACHE=/path cluster/build.sh
#
# Layout: $FLOW_CACHE/bin/<component>-<version>/<binary>; Go caches stay in the
# usual GOMODCACHE/GOCACHE so a rebuild after a version bump is incremental.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${FLOW_CACHE:-$HOME/.cache/flow-operator}"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
mkdir -p "$cache/bin" "$cache/work"

k8s_dir="$cache/bin/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache/bin/etcd-$ETCD_VERSION"
kwok_dir="$cache/bin/kwok-$KWOK_VERSION"
helm_dir="$cache/bin/helm-$HELM_VERSION"

say() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

ticker() {  # progress while a long `go build` runs: one line every 30 s
  local what="$1" start=$SECONDS
  while sleep 30; do say "  ... still building $what ($((SECONDS - start)) s)"; done
}

run_with_progress() {  # run_with_progress WHAT cmd...
  local what="$1"; shift
  ticker "$what" & local t=$!
  local rc=0; "$@" || rc=$?
  kill "$t" 2>/dev/null; wait "$t" 2>/dev/null || true
  return "$rc"
}

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=0 b
  for b in "${bins[@]}"; do [ -x "$k8s_dir/$b" ] || missing=1; done
  if [ "$missing" = 0 ]; then say "kubernetes $KUBERNETES_VERSION: cached"; return; fi

  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local staging="v0.${KUBERNETES_VERSION#v1.}"
  local w="$cache/work/kubernetes-$KUBERNETES_VERSION"
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  say "kubernetes $KUBERNETES_VERSION: preparing wrapper module"
  go mod init flowops.local/build-kubernetes >/dev/null 2>&1
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # Every `k8s.io/<name> => ./staging/...` replace line becomes a replace to the
  # published staging module at the matching v0.x version (derived, not listed).
  local mods
  mods="$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod")"
  [ -n "$mods" ] || { say "no staging replace lines found in $gomod"; exit 1; }
  local m
  for m in $mods; do go mod edit -replace "$m=$m@$staging"; done
  say "kubernetes: $(echo "$mods" | wc -l) staging modules pinned to $staging; resolving dependencies"
  go get "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null 2>&1 || true
  local pkgs=()
  for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$KUBERNETES_VERSION"); done
  go get "${pkgs[@]}"

  local v="k8s.io/component-base/version" c="k8s.io/client-go/pkg/version" ld="-s -w"
  for p in "$v" "$c"; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$k8s_dir.tmp"
  for b in "${bins[@]}"; do
    [ -x "$k8s_dir/$b" ] && { cp "$k8s_dir/$b" "$k8s_dir.tmp/"; continue; }
    say "building $b $KUBERNETES_VERSION (cold: several minutes on 2 cores)"
    run_with_progress "$b" go build -trimpath -tags selinux,notest -ldflags "$ld" \
      -o "$k8s_dir.tmp/$b" "k8s.io/kubernetes/cmd/$b"
  done
  rm -rf "$k8s_dir"; mv "$k8s_dir.tmp" "$k8s_dir"
}

build_etcd() {
  if [ -x "$etcd_dir/etcd" ]; then say "etcd $ETCD_VERSION: cached"; return; fi
  local w="$cache/work/etcd-$ETCD_VERSION"
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  go mod init flowops.local/build-etcd >/dev/null 2>&1
  say "etcd $ETCD_VERSION: resolving dependencies"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  say "building etcd $ETCD_VERSION"
  mkdir -p "$etcd_dir.tmp"
  run_with_progress etcd go build -trimpath -ldflags "-s -w" -o "$etcd_dir.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$etcd_dir"; mv "$etcd_dir.tmp" "$etcd_dir"
}

build_go_install() {  # build_go_install DIR BIN MODULE/cmd/BIN VERSION
  local dir="$1" bin="$2" pkg="$3" ver="$4"
  if [ -x "$dir/$bin" ]; then say "$bin $ver: cached"; return; fi
  say "building $bin $ver"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" run_with_progress "$bin" go install -trimpath -ldflags "-s -w" "$pkg@$ver"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

stage_files() {  # kwok's default stages, copied from the module source
  local src
  src="$(cd "$cache/work" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  mkdir -p "$kwok_dir/stages"
  cp -r "$src/kustomize/stage/." "$kwok_dir/stages/"
  chmod -R u+w "$kwok_dir/stages"
}

what="${1:-all}"
case "$what" in
  all|cluster)
    build_etcd
    build_go_install "$kwok_dir" kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
    [ -d "$kwok_dir/stages" ] || stage_files
    build_kubernetes
    [ "$what" = all ] && build_go_install "$helm_dir" helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
    ;;
  helm) build_go_install "$helm_dir" helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
  *) echo "usage: $0 [all|cluster|helm]" >&2; exit 2 ;;
esac
say "done: binaries under $cache/bin"
