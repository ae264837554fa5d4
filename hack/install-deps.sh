#!/usr/bin/env bash
# Install everything kubenova's demo and tests need on a fresh Debian 12 machine, as root:
# the Debian packages in hack/apt-packages.txt, a Go toolchain new enough for the builds
# when the machine has none (or an older one), the upstream binaries built from Go
# modules (hack/controlplane.sh, cached in ~/.cache/kubenova/bin), the Python venv
# (.venv, from pyproject.toml + requirements.lock) and the test guest image.
# Idempotent: a second run on a ready machine takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-deps] %s\n' "$*" >&2; }
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

# 1. Debian packages: only ask apt when something is missing.
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' hack/apt-packages.txt | awk '{print $1}')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. Go >= 1.24 for step 3 (hack/install-go.sh: Debian's golang-go is too old, so it
#    fetches the toolchain GOTOOLCHAIN would, from the Go module proxy, when needed).
hack/install-go.sh
export PATH="${KUBENOVA_GO_LINK_DIR:-/usr/local/bin}:$PATH"

# 3. Upstream binaries (kube-apiserver, kube-scheduler, etcd, kubectl, helm, minio), cached
#    by version.
hack/controlplane.sh all
# The kubelet cluster's binaries (kubelet, controller-manager, kube-proxy, CoreDNS, pause) are
# built on demand by kubenova/devcluster/node.py (the e2e test, `node up`), not here: the
# demo never runs them.

# 4. Python: a venv with the project (editable) and its pinned dependencies.
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  log "Python >= 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))"; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.kubenova-deps
want_stamp=$(cat pyproject.toml requirements.lock 2>/dev/null | sha256sum | cut -c1-16)
if [[ ! -f $stamp || $(cat "$stamp") != "$want_stamp" ]]; then
  log "installing Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  if [[ -f requirements.lock ]]; then
    .venv/bin/pip install -q -c requirements.lock -e '.[dev]'
  else
    .venv/bin/pip install -q -e '.[dev]'
  fi
  echo "$want_stamp" > "$stamp"
fi

# 5. The test guest (kernel + busybox initramfs), cached under ~/.cache/kubenova/images.
if [[ -x hack/build-test-image.sh ]]; then
  hack/build-test-image.sh >/dev/null
fi
log "ready"
