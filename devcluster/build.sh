#!/usr/bin/env bash
# Build the local cluster's binaries from Go modules into a version-keyed cache.
#
#   devcluster/build.sh                     build whatever the cluster needs and is missing
#   devcluster/build.sh --with-test-tools   the same, plus what only the tests use (helm-unittest)
#   devcluster/build.sh --only registry …   just the named tools (etcd kwok helm kubernetes
#                                           registry crane helm-unittest)
#   devcluster/build.sh --print             print the bin directory and exit
#
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl come from
# k8s.io/kubernetes through a generated wrapper module (k8s.io/kubernetes replaces its
# ~30 staging modules with local paths, so `go install` cannot build it directly);
# etcd from go.etcd.io/etcd/server/v3 through a two-line main; the local image registry from
# github.com/distribution/distribution/v3 through a main with only the filesystem storage driver;
# kwok, helm and crane by `go install`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${KUBETTS_CACHE:-$HOME/.cache/kube-tts}
BIN=$CACHE/bin
mkdir -p "$BIN"

if [[ ${1:-} == --print ]]; then echo "$BIN"; exit 0; fi
tools=(etcd kwok helm kubernetes registry crane)
case ${1:-} in
  '') ;;
  --with-test-tools) tools+=(helm-unittest) ;;
  --only) shift; tools=("$@") ;;
  *) echo "usage: $0 [--with-test-tools | --only TOOL… | --print]" >&2; exit 2 ;;
esac

log() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }

# `go build -v` names each package as it compiles: show a count every 100 packages so a long cold
# build visibly progresses; anything else (compiler errors) passes through unchanged.
progress() {
  awk -v what="$1" '
    /^[A-Za-z0-9_.~-]+(\/[A-Za-z0-9_.~+-]+)*$/ { n++; if (n % 100 == 0) { printf "[build]   %s: %d packages compiled\n", what, n; fflush() } next }
    { print; fflush() }
    END { if (n) printf "[build]   %s: %d packages compiled\n", what, n }' >&2
}
stamp() { date +%s; }

k8s_bin=$BIN/k8s-$KUBERNETES_VERSION
etcd_bin=$BIN/etcd-$ETCD_VERSION
kwok_bin=$BIN/kwok-$KWOK_VERSION
helm_bin=$BIN/helm-$HELM_VERSION
registry_bin=$BIN/registry-$DISTRIBUTION_VERSION
crane_bin=$BIN/crane-$GO_CONTAINERREGISTRY_VERSION

build_kubernetes() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=0 b
  for b in "${want[@]}"; do [[ -x $k8s_bin/$b ]] || missing=1; done
  (( missing )) || return 0
  local t0; t0=$(stamp)
  local mod=$CACHE/src/k8s-wrapper-$KUBERNETES_VERSION
  mkdir -p "$mod" "$k8s_bin.tmp"
  log "kubernetes $KUBERNETES_VERSION: generating wrapper module in $mod"
  local gomod
  gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local staging_ver="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "module kubetts.local/k8s-wrapper"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    # every staging module the release requires as v0.0.0 is replaced by its published tag
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$staging_ver" '{print "replace " $1 " => " $1 " " v}'
  } > "$mod/go.mod"
  log "kubernetes: $(grep -c '^replace' "$mod/go.mod") staging replaces; compiling (cold: tens of minutes on 2 cores)"
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  local major minor
  major=${KUBERNETES_VERSION#v}; major=${major%%.*}
  minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
  ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  (cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "$ldflags" -o "$k8s_bin.tmp/" \
      $(printf 'k8s.io/kubernetes/cmd/%s ' "${want[@]}") 2>&1) | progress kubernetes
  rm -rf "$k8s_bin"; mv "$k8s_bin.tmp" "$k8s_bin"
  log "kubernetes: built in $(( $(stamp) - t0 )) s"
}

build_etcd() {
  [[ -x $etcd_bin/etcd ]] && return 0
  local t0; t0=$(stamp)
  local mod=$CACHE/src/etcd-wrapper-$ETCD_VERSION
  mkdir -p "$mod" "$etcd_bin.tmp"
  cat > "$mod/go.mod" <<MOD
module kubetts.local/etcd-wrapper

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > "$mod/main.go" <<'GO'
// Command etcd is etcd's own main, built from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "etcd $ETCD_VERSION: compiling"
  (cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$etcd_bin.tmp/etcd" . 2>&1) \
    | progress etcd
  rm -rf "$etcd_bin"; mv "$etcd_bin.tmp" "$etcd_bin"
  log "etcd: built in $(( $(stamp) - t0 )) s"
}

build_registry() {
  # distribution's registry (the reference OCI registry; images on disk, DELETE allowed by its
  # config) with only the filesystem storage driver: its own main also links the Azure, GCS and S3
  # SDKs, which the local cluster never uses and which would triple the compile
  [[ -x $registry_bin/registry ]] && return 0
  local t0; t0=$(stamp)
  local mod=$CACHE/src/registry-wrapper-$DISTRIBUTION_VERSION
  mkdir -p "$mod" "$registry_bin.tmp"
  cat > "$mod/go.mod" <<MOD
module kubetts.local/registry-wrapper

go 1.26

require github.com/distribution/distribution/v3 $DISTRIBUTION_VERSION
MOD
  cat > "$mod/main.go" <<'GO'
// Command registry is distribution's registry with the filesystem storage driver only.
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() { _ = registry.RootCmd.Execute() }
GO
  log "registry (distribution $DISTRIBUTION_VERSION): compiling"
  (cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$registry_bin.tmp/registry" . 2>&1) \
    | progress registry
  rm -rf "$registry_bin"; mv "$registry_bin.tmp" "$registry_bin"
  log "registry: built in $(( $(stamp) - t0 )) s"
}

go_install() { # name module version dest
  local name=$1 module=$2 version=$3 dest=$4
  [[ -x $dest/$name ]] && return 0
  local t0; t0=$(stamp)
  log "$name $version: go install"
  mkdir -p "$dest.tmp"
  GOBIN="$dest.tmp" CGO_ENABLED=0 go install -v -trimpath -ldflags "-s -w" "$module@$version" 2>&1 | progress "$name"
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  log "$name: built in $(( $(stamp) - t0 )) s"
}

build_helm_unittest() {
  # the helm-unittest plugin: its module replaces one dependency, so `go install` refuses it and a
  # two-line wrapper module carries the same replace; the plugin folder is what `helm plugin` expects
  local dest=$BIN/helm-unittest-$HELM_UNITTEST_VERSION
  [[ -x $dest/untt ]] && return 0
  local t0; t0=$(stamp)
  local mod=$CACHE/src/helm-unittest-wrapper-$HELM_UNITTEST_VERSION
  mkdir -p "$mod" "$dest.tmp"
  local gomod
  gomod=$(cd "$mod" && go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module kubetts.local/helm-unittest-wrapper"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require github.com/helm-unittest/helm-unittest $HELM_UNITTEST_VERSION"
    grep -E '^replace ' "$gomod"
  } > "$mod/go.mod"
  log "helm-unittest $HELM_UNITTEST_VERSION: compiling"
  (cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$dest.tmp/untt" \
      github.com/helm-unittest/helm-unittest/cmd/helm-unittest 2>&1) | progress helm-unittest
  cat > "$dest.tmp/plugin.yaml" <<PLUGIN
name: "unittest"
version: "${HELM_UNITTEST_VERSION#v}"
usage: "unit test for helm charts"
description: "helm-unittest, built from Go modules by kube-tts' devcluster/build.sh"
command: "\$HELM_PLUGIN_DIR/untt"
PLUGIN
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  mkdir -p "$BIN/helm-plugins"
  ln -sfn "$dest" "$BIN/helm-plugins/unittest"
  log "helm-unittest: built in $(( $(stamp) - t0 )) s"
}

# stable names for scripts: $BIN/current/<tool>
mkdir -p "$BIN/current"
link() { local f; for f in "$@"; do ln -sfn "$f" "$BIN/current/$(basename "$f")"; done; }
for tool in "${tools[@]}"; do
  case $tool in
    etcd) build_etcd; link "$etcd_bin/etcd" ;;
    kwok) go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "$kwok_bin"; link "$kwok_bin/kwok" ;;
    helm) go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_bin"; link "$helm_bin/helm" ;;
    kubernetes) build_kubernetes; link "$k8s_bin"/* ;;
    registry) build_registry; link "$registry_bin/registry" ;;
    crane)
      go_install crane github.com/google/go-containerregistry/cmd/crane "$GO_CONTAINERREGISTRY_VERSION" "$crane_bin"
      link "$crane_bin/crane" ;;
    helm-unittest) build_helm_unittest ;;
    *) echo "unknown tool: $tool" >&2; exit 2 ;;
  esac
done
log "binaries ready in $BIN/current"
