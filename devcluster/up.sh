#!/usr/bin/env bash
# `make up`: the cluster's Go tools, and beside them the Debian packages, the venv and the images;
# then the cluster, the pushes and the platform.
#
# On a cold machine the Go build (devcluster/build.sh, about 12 minutes on 2 cores) leaves a core
# idle for much of its time: module downloads, the single-threaded links, packages waiting on
# others. It needs only Go. The Debian packages (apt: downloads, unpacking), the venv (pip: mostly
# downloads) and the image builds (podman: downloads, unpacking, layer commits) need none of its
# output, so they run beside it; only the pushes need the registry it builds. Warm, every step
# finds its output cached and this takes seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
make=${MAKE:-make}
stamp() { date +%s; }
t0=$(stamp)

# the Go build in its own process group, so a failure here stops its compilers too
setsid devcluster/build.sh &
build=$!
trap 'kill -- "-$build" 2>/dev/null || true' EXIT

"$make" --no-print-directory deps venv
devcluster/images.sh --build-only
printf '\033[1m[up]\033[0m venv and images built after %s s; waiting for the cluster tools\n' "$(( $(stamp) - t0 ))" >&2
wait "$build"
trap - EXIT

"${VENV:-.venv}/bin/kube-tts-dev" cluster-up
devcluster/images.sh
"${VENV:-.venv}/bin/kube-tts-dev" platform-up
printf '\033[1m[up]\033[0m up in %s s\n' "$(( $(stamp) - t0 ))" >&2
