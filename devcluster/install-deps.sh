#!/usr/bin/env bash
# Install the Debian packages the local cluster and the tests need, if any are missing.
# The node agent drives iproute2 and iptables (pod network namespaces, service NAT) as root.
# `make images` builds with podman (runc as its runtime: crun fails on this kernel's hybrid
# cgroups) and builds the base-image stand-in with mmdebstrap; devcluster/podman.sh configures
# podman from devcluster/config/containers.conf, not /etc/containers.
# The web UI's browser tests run Debian's chromium through playwright-core (node); a CJK font lets
# the Chinese labels render in their screenshots. sox with libsox-fmt-mp3 reads saved speech back
# (tests/component/test_saved_formats.py).
set -euo pipefail
packages=(iproute2 iptables util-linux ca-certificates sox libsox-fmt-mp3 python3-venv chromium fonts-wqy-microhei
  podman runc mmdebstrap curl)
# Node.js (>= 18) with npm: any installation will do; Debian's when there is none
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for pkg in "${packages[@]}"; do
  # installed, not just known to dpkg (a removed package keeps its configuration files and a status)
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "[deps] installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
