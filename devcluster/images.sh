#!/usr/bin/env bash
# Build kube-tts' five images with podman (no Docker daemon) and push them to the local registry;
# the two third-party speech servers the server-engine tests run (docs/servers.md) when named.
#
#   devcluster/images.sh                 build and push operator, router, mcp, wyoming and inference
#   devcluster/images.sh --servers       the same and local-tts-studio, fastkokoro
#   devcluster/images.sh router mcp      just these
#   devcluster/images.sh --build-only …  build, push nothing and need no registry (`make up` builds
#                                        the images while the cluster's Go tools compile)
#   devcluster/images.sh --print         print kube-tts' own image references and exit
#
# References: $REGISTRY/kube-tts/<name>:<appVersion of charts/kube-tts/Chart.yaml>, where REGISTRY
# is the local registry, 127.0.0.1:(5100 + KUBETTS_INSTANCE) as in tts_devcluster.layout. When it
# does not answer, this starts it (`kube-tts-dev registry-up`; `make down` stops it). Images are
# the Dockerfiles' targets, unchanged: Dockerfile (operator, router, mcp, wyoming) and
# inference_image/Dockerfile (cpu). Unchanged sources rebuild from podman's layer cache and push
# nothing; see docs/images.md for the figures.
#
# The base image is the Dockerfiles' python:3.11-slim-bookworm (docker.io/library/…). KUBETTS_BASE:
#   auto      (default) podman's copy if it has one; else pull it; else build the stand-in
#   official  pull it (fails where Docker Hub cannot be reached)
#   standin   build the stand-in from Debian packages unless it exists (mmdebstrap bookworm
#             minbase + Debian's python3 in a venv at /usr/local; devcluster/config/python-standin.Containerfile)
# The stand-in carries the label dev.kube-tts.standin=<recipe hash> and is rebuilt when the recipe
# changes. Builds run with --network=host and the host's CA bundle mounted read-only (HTTPS here is
# TLS-inspected) with pip pointed at it (--build-arg PIP_CERT); nothing of it stays in the images.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
podman=$here/podman.sh
CACHE=${KUBETTS_CACHE:-$HOME/.cache/kube-tts}
INSTANCE=${KUBETTS_INSTANCE:-0}
REGISTRY=127.0.0.1:$((5100 + INSTANCE))
VERSION=$(sed -n 's/^appVersion: *"\(.*\)"/\1/p' "$repo/charts/kube-tts/Chart.yaml")
BASE=docker.io/library/python:3.11-slim-bookworm
BASE_MODE=${KUBETTS_BASE:-auto}
DEBIAN_MIRROR=${KUBETTS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${KUBETTS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# name:Dockerfile:target, as the Makefile's IMAGES (kind-load) lists them
ALL=(operator:Dockerfile:operator router:Dockerfile:router mcp:Dockerfile:mcp wyoming:Dockerfile:wyoming inference:inference_image/Dockerfile:cpu)
# third-party speech servers that kube-tts runs as `engine: openai-compatible` (docs/servers.md):
# built when named (the server-engine tests name them); not part of the chart or of `make up`
SERVERS=(local-tts-studio:images/servers/Containerfile:local-tts-studio fastkokoro:images/servers/Containerfile:fastkokoro)
# built only when named (`make images-cuda`): several GB of torch, not part of `make test`
EXTRA=(inference-cuda:inference_image/Dockerfile:cuda)

ref_of() {
  case $1 in
    inference-cuda) echo "$REGISTRY/kube-tts/inference:$VERSION-cuda" ;;
    *) echo "$REGISTRY/kube-tts/$1:$VERSION" ;;
  esac
}
log() { printf '\033[1m[images]\033[0m %s\n' "$*" >&2; }
stamp() { date +%s; }

wanted=()
if [[ ${1:-} == --print ]]; then
  for spec in "${ALL[@]}"; do ref_of "${spec%%:*}"; done
  exit 0
fi
build_only=0
if [[ ${1:-} == --build-only ]]; then build_only=1; shift; fi
defaults=("${ALL[@]}")
if [[ ${1:-} == --servers ]]; then defaults+=("${SERVERS[@]}"); shift; fi
for name in "$@"; do
  found=
  for spec in "${ALL[@]}" "${SERVERS[@]}" "${EXTRA[@]}"; do [[ ${spec%%:*} == "$name" ]] && found=$spec; done
  [[ -n $found ]] || { echo "unknown image $name; one of: operator router mcp wyoming inference local-tts-studio fastkokoro inference-cuda" >&2; exit 2; }
  wanted+=("$found")
done
((${#wanted[@]})) || wanted=("${defaults[@]}")

for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed: run \`make deps\`" >&2; exit 1; }
done
[[ -n $VERSION ]] || { echo "no appVersion in charts/kube-tts/Chart.yaml" >&2; exit 1; }

# --- the local registry ----------------------------------------------------------------------
registry_answers() { curl -fsS -o /dev/null --max-time 2 "http://$REGISTRY/v2/"; }
if (( ! build_only )) && ! registry_answers 2>/dev/null; then
  dev=$repo/.venv/bin/kube-tts-dev
  if [[ -x $dev ]]; then
    log "the local registry on $REGISTRY is not running: starting it (make down stops it)"
    "$dev" registry-up
  else
    echo "the local registry on $REGISTRY is not running and .venv is missing: run \`make images\`" \
      "(which creates .venv and starts the registry) or \`make up\`" >&2
    exit 1
  fi
fi

# --- the base image --------------------------------------------------------------------------
standin_label() { "$podman" image inspect -f '{{index .Labels "dev.kube-tts.standin"}}' "$BASE" 2>/dev/null || true; }

build_standin() {
  local t0 work rootfs
  t0=$(stamp)
  mkdir -p "$CACHE/containers"
  work=$(mktemp -d "$CACHE/containers/standin.XXXXXX")
  log "base stand-in: mmdebstrap bookworm minbase (+ca-certificates, merged /usr, no man/doc/locale/info)"
  if ! mmdebstrap --variant=minbase --include=ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$work/rootfs.tar" \
    "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb $DEBIAN_SECURITY bookworm-security main" >"$work/mmdebstrap.log" 2>&1; then
    tail -n 30 "$work/mmdebstrap.log" >&2
    echo "mmdebstrap failed (log above; the whole of it in $work/mmdebstrap.log)" >&2
    exit 1
  fi
  rootfs=localhost/kube-tts/debian-minbase:bookworm
  "$podman" import --quiet "$work/rootfs.tar" "$rootfs" >/dev/null
  log "base stand-in: python3 and python3-venv, a venv at /usr/local"
  "$podman" build --quiet --network=host --pull=never --layers \
    --build-arg ROOTFS="$rootfs" \
    --label dev.kube-tts.standin="$standin_recipe" \
    --label org.opencontainers.image.description="stand-in for python:3.11-slim-bookworm built by kube-tts from Debian packages" \
    -f "$here/config/python-standin.Containerfile" -t "$BASE" "$work" >/dev/null
  "$podman" rmi "$rootfs" >/dev/null 2>&1 || true
  rm -rf "$work"
  log "base stand-in: $BASE built in $(( $(stamp) - t0 )) s"
}

# the recipe: the Containerfile, the mirrors and this function; a change rebuilds the stand-in
standin_recipe=$(
  { cat "$here/config/python-standin.Containerfile"; echo "$DEBIAN_MIRROR $DEBIAN_SECURITY"; declare -f build_standin; } \
    | sha1sum | cut -c1-12
)

ensure_base() {
  local have=
  "$podman" image exists "$BASE" && have=1
  case $BASE_MODE in
    official)
      [[ -n $have && -z $(standin_label) ]] && return 0
      log "pulling $BASE"
      "$podman" pull --quiet "$BASE" >/dev/null ;;
    standin)
      [[ -n $have && $(standin_label) == "$standin_recipe" ]] && return 0
      build_standin ;;
    auto)
      if [[ -n $have ]]; then
        local label; label=$(standin_label)
        [[ -z $label || $label == "$standin_recipe" ]] && return 0
        log "the base stand-in's recipe changed: rebuilding it"
        build_standin; return 0
      fi
      log "pulling $BASE"
      if timeout 120 "$podman" pull --quiet "$BASE" >/dev/null 2>&1; then return 0; fi
      log "cannot pull $BASE (no route to Docker Hub?): building a stand-in from Debian packages"
      build_standin ;;
    *) echo "KUBETTS_BASE must be auto, official or standin (not $BASE_MODE)" >&2; exit 2 ;;
  esac
}
ensure_base

# --- build and push --------------------------------------------------------------------------
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown && -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  revision+=-dirty
fi
tls=()
if [[ -r $CA_BUNDLE ]]; then
  # the host's CA bundle over the base image's own (the path exists there, so no mount point is
  # left behind in a layer) and pip told to use it (PIP_CERT, a build argument: not in the image)
  tls=(-v "$CA_BUNDLE:$CA_BUNDLE:ro" --build-arg PIP_CERT="$CA_BUNDLE")
fi

remote_config_digest() { # the config digest of the image the registry holds under $1, if any
  curl -fsS --max-time 5 -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/${1#"$REGISTRY"/}" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])' 2>/dev/null || true
}

# the base itself, for pods that run plain Python (the local cluster's own tests)
base_ref=$REGISTRY/library/${BASE##*/}
base_id=$("$podman" image inspect -f '{{.Id}}' "$BASE")
if (( ! build_only )) && [[ $(remote_config_digest "$REGISTRY/library/python/manifests/${BASE##*:}") != "sha256:$base_id" ]]; then
  "$podman" tag "$BASE" "$base_ref"
  "$podman" push --quiet --tls-verify=false "$base_ref"
  log "base: pushed $base_ref"
fi

for spec in "${wanted[@]}"; do
  name=${spec%%:*}; rest=${spec#*:}; file=${rest%%:*}; target=${rest#*:}
  ref=$(ref_of "$name")
  t0=$(stamp)
  log "$name: podman build -f $file --target $target"
  "$podman" build --quiet --network=host --pull=never --layers \
    --build-arg PYTHON_IMAGE="$BASE" --build-arg VERSION="$VERSION" --build-arg REVISION="$revision" \
    "${tls[@]}" -f "$repo/$file" --target "$target" -t "$ref" "$repo" >/dev/null
  # podman's layer cache ignores a changed ARG in a LABEL: an image whose inputs did not change
  # keeps the revision it was first built at, so the label is set again on top (config only)
  if [[ $("$podman" image inspect -f '{{index .Labels "org.opencontainers.image.revision"}}' "$ref") != "$revision" ]]; then
    printf 'FROM %s\nLABEL org.opencontainers.image.revision="%s"\n' "$ref" "$revision" \
      | "$podman" build --quiet --pull=never --no-cache -t "$ref" -f - "$(mktemp -d)" >/dev/null
  fi
  t1=$(stamp)
  if (( build_only )); then log "$name: built in $((t1 - t0)) s"; continue; fi
  id=$("$podman" image inspect -f '{{.Id}}' "$ref")
  manifest_path=${ref#"$REGISTRY"/}; manifest_path=${manifest_path%:*}/manifests/${ref##*:}
  if [[ $(remote_config_digest "$REGISTRY/$manifest_path") == "sha256:$id" ]]; then
    log "$name: built in $((t1 - t0)) s; $ref is already in the registry"
  else
    "$podman" push --quiet --tls-verify=false "$ref"
    log "$name: built in $((t1 - t0)) s, pushed in $(( $(stamp) - t1 )) s: $ref"
  fi
done
