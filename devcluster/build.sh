#!/usr/bin/env bash
# Build the local cluster's binaries from Go modules into a version-keyed cache.
#
#   devcluster/build.sh                     build whatever the cluster needs and is missing
#   devcluster/build.sh --with-test-tools   the same, plus what only the tests use (helm-unittest)
#   devcluster/build.sh --only registry …   just the named tools (etcd kwok helm kubernetes
#                                           registry crane: the cluster tools; helm-unittest)
#   devcluster/build.sh --print             print the bin directory and exit
#
# Everything `make up` needs (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, kwok, helm, the local image registry and crane) is one generated wrapper module and one
# `go build` into $CACHE/bin/cluster-tools-<key>/, the key a hash of their versions; asking for
# any of them builds them all. helm-unittest, which only the tests use, is built on its own.
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

# one build at a time per cache: two checkouts building at once (worktrees, a second `make up`)
# would share each tool's .tmp directory; the second waits, then finds the tools built and skips
exec {lock}>"$BIN/.build.lock"
if ! flock -n "$lock"; then
  log "another build is using $BIN; waiting for it"
  flock "$lock"
fi

# `go build -v` names each package as it compiles: show a count every 100 packages so a long cold
# build visibly progresses; anything else (compiler errors) passes through unchanged.
progress() {
  awk -v what="$1" '
    /^[A-Za-z0-9_.~-]+(\/[A-Za-z0-9_.~+-]+)*$/ { n++; if (n % 100 == 0) { printf "[build]   %s: %d packages compiled\n", what, n; fflush() } next }
    { print; fflush() }
    END { if (n) printf "[build]   %s: %d packages compiled\n", what, n }' >&2
}
stamp() { date +%s; }

# Everything the cluster runs is one wrapper module and one `go build`: the apiserver, the controller
# manager, the scheduler, kubectl, kwok and helm all link k8s.io/api, apimachinery and client-go, and
# etcd, the registry and crane share grpc, protobuf, otel and cobra with them; one module graph
# (Go's minimal version selection picks one version of each) compiles every shared package once,
# and one build keeps both cores busy to the end instead of idling through each tool's link
bundle=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm registry crane)
bundle_key=$(printf '%s\n' "k8s=$KUBERNETES_VERSION" "etcd=$ETCD_VERSION" "kwok=$KWOK_VERSION" "helm=$HELM_VERSION" \
  "distribution=$DISTRIBUTION_VERSION" "crane=$GO_CONTAINERREGISTRY_VERSION" "layout=1" | sha256sum | cut -c1-12)
bundle_bin=$BIN/cluster-tools-$bundle_key

bundle_module() { # dir: write the wrapper module (go.mod, and mains for etcd and the registry)
  local mod=$1 gomod staging_ver="v0.${KUBERNETES_VERSION#v1.}"
  mkdir -p "$mod/etcd" "$mod/registry"
  gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module kubetts.local/cluster-tools"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo "	sigs.k8s.io/kwok $KWOK_VERSION"
    echo "	helm.sh/helm/v3 $HELM_VERSION"
    echo "	github.com/distribution/distribution/v3 $DISTRIBUTION_VERSION"
    echo "	github.com/google/go-containerregistry $GO_CONTAINERREGISTRY_VERSION"
    echo ")"
    echo
    # k8s.io/kubernetes requires its ~30 staging modules as v0.0.0 and replaces them with local
    # paths, so `go install` cannot build it; each is replaced here by its published tag
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$staging_ver" '{print "replace " $1 " => " $1 " " v}'
  } > "$mod/go.mod"
  cat > "$mod/etcd/main.go" <<'GO'
// Command etcd is etcd's own main, built from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  # distribution's registry (the reference OCI registry; images on disk, DELETE allowed by its
  # config) with only the filesystem storage driver: its own main also links the Azure, GCS and S3
  # SDKs, which the local cluster never uses and which would triple its compile
  cat > "$mod/registry/main.go" <<'GO'
// Command registry is distribution's registry with the filesystem storage driver only.
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

func main() { _ = registry.RootCmd.Execute() }
GO
}

build_bundle() {
  local missing=0 b
  for b in "${bundle[@]}"; do [[ -x $bundle_bin/$b ]] || missing=1; done
  (( missing )) || return 0
  local t0; t0=$(stamp)
  local mod=$CACHE/src/cluster-tools-$bundle_key
  log "cluster tools (Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION," \
    "registry $DISTRIBUTION_VERSION, crane $GO_CONTAINERREGISTRY_VERSION): one wrapper module in $mod"
  bundle_module "$mod"
  log "cluster tools: compiling in one go build (cold: about 12 minutes on 2 cores; progress every 100 packages)"
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  local major minor
  major=${KUBERNETES_VERSION#v}; major=${major%%.*}
  minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
  ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  rm -rf "$bundle_bin.tmp"; mkdir -p "$bundle_bin.tmp"
  (cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "$ldflags" -o "$bundle_bin.tmp/" \
      $(printf 'k8s.io/kubernetes/cmd/%s ' kube-apiserver kube-controller-manager kube-scheduler kubectl) \
      sigs.k8s.io/kwok/cmd/kwok helm.sh/helm/v3/cmd/helm github.com/google/go-containerregistry/cmd/crane \
      ./etcd ./registry 2>&1) | progress "cluster tools"
  for b in "${bundle[@]}"; do [[ -x $bundle_bin.tmp/$b ]] || { log "cluster tools: $b was not built"; exit 1; }; done
  rm -rf "$bundle_bin"; mv "$bundle_bin.tmp" "$bundle_bin"
  log "cluster tools: built in $(( $(stamp) - t0 )) s"
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
    etcd | kwok | helm | registry | crane) build_bundle; link "$bundle_bin/$tool" ;;
    kubernetes) build_bundle; link "$bundle_bin"/kube-* "$bundle_bin/kubectl" ;;
    helm-unittest) build_helm_unittest ;;
    *) echo "unknown tool: $tool" >&2; exit 2 ;;
  esac
done
log "binaries ready in $BIN/current"
