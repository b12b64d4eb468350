#!/usr/bin/env bash
# podman with kube-tts' configuration: devcluster/config/containers.conf (runc, lower rlimits,
# host networking, no systemd) and storage under the version-keyed cache, so nothing in
# /etc/containers or /var/lib/containers is touched:
#
#   devcluster/podman.sh images
#   devcluster/podman.sh run --rm --network=none 127.0.0.1:5100/kube-tts/router:0.1.0 python -V
#
# Images live in ${KUBETTS_CACHE:-~/.cache/kube-tts}/containers/storage (overlay driver). The
# run root (locks, mount state) must not survive a reboot, so it lives under /run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v podman >/dev/null || { echo "podman is not installed: run \`make deps\`" >&2; exit 1; }
if [[ $(id -u) != 0 ]]; then
  echo "devcluster/podman.sh runs podman as root (rootless podman needs subuids, not set up here)" >&2
  exit 1
fi
CACHE=${KUBETTS_CACHE:-$HOME/.cache/kube-tts}
root=$CACHE/containers/storage
run=/run/kube-tts/containers-$(printf %s "$root" | sha1sum | cut -c1-8)
mkdir -p "$root" "$run"
export CONTAINERS_CONF=$here/config/containers.conf
exec podman --root "$root" --runroot "$run/storage" --tmpdir "$run/libpod" --storage-driver overlay "$@"
