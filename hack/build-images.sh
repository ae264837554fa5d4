#!/usr/bin/env bash
# Build kubenova's two images from the Dockerfile as a user would, without a Docker daemon
# or a registry: a Debian base made by mmdebstrap from Debian packages, then buildah
# (chroot isolation, no runc, no daemon) for the Dockerfile's `operator` and `agent`
# targets, each exported as a docker-archive that `ctr images import` and
# `docker load` accept.
#
# Everything is cached by content under ~/.cache/kubenova/images: the base by the apt
# sources and this script's base recipe, the images by the Dockerfile and every file the
# build copies. A second run with nothing changed takes a second.
#
# usage: hack/build-images.sh          prints  operator=<tar> agent=<tar> ref=<tag> lines
#   KUBENOVA_BUILD_CA   CA bundle pip uses inside the build stage (default: the machine's,
#                       for machines behind a TLS-inspecting proxy); mounted, never copied.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${KUBENOVA_CACHE:-$HOME/.cache/kubenova}/images"
SUITE=bookworm
CA="${KUBENOVA_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
mkdir -p "$CACHE"

log() { printf '[build-images] %s\n' "$*" >&2; }
for tool in mmdebstrap buildah; do
  command -v "$tool" >/dev/null || { log "$tool is missing: run hack/install-deps.sh"; exit 1; }
done
# buildah's store lives in the cache too, so nothing is left in /var/lib/containers.
STORE="$CACHE/buildah"
bah() { buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver overlay "$@"; }

# One builder at a time: two test sessions on a fresh machine wait for each other.
exec {lock}>"$CACHE/.build-images.lock"
flock "$lock"

# ---- base: Debian from its packages --------------------------------------------------
sources=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
[[ -n $sources ]] || { log "no apt sources on this machine to build the base from"; exit 1; }
base_recipe="mmdebstrap --variant=minbase merged-usr $SUITE nodoc"
base_key=$(printf '%s\n%s\n' "$base_recipe" "$sources" | sha256sum | cut -c1-12)
BASE_REF="localhost/kubenova-base:$SUITE-$base_key"
if ! bah inspect --type image "$BASE_REF" >/dev/null 2>&1; then
  rootfs="$CACHE/base-$SUITE-$base_key.tar"
  if [[ ! -s $rootfs ]]; then
    log "making the Debian $SUITE base with mmdebstrap (about a minute)"
    start=$SECONDS
    sources_file=$(mktemp)
    printf '%s\n' "$sources" >"$sources_file"
    # Without the merged-usr hook minbase pulls in usrmerge and perl; docs are dropped as
    # in Debian's slim images.
    mmdebstrap --quiet --mode=root --variant=minbase --format=tar \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      "$SUITE" "$rootfs.tmp" - <"$sources_file"
    rm -f "$sources_file"
    mv "$rootfs.tmp" "$rootfs"
    log "base rootfs in $((SECONDS - start)) s"
  fi
  c=$(bah from --quiet scratch)
  bah add --quiet "$c" "$rootfs" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$c"
  bah commit --quiet --rm "$c" "$BASE_REF" >/dev/null
fi

# ---- the Dockerfile's targets ---------------------------------------------------------
# The key covers every file the build copies (as .dockerignore leaves them) and the base.
context_files() {
  printf '%s\n' Dockerfile pyproject.toml requirements.lock README.md
  find operator agents kubenova \( -name __pycache__ -o -name '*.egg-info' \) -prune \
    -o \( -type f -o -type l \) ! -name '*.pyc' -print
}
key=$({ echo "$BASE_REF"; context_files | LC_ALL=C sort | while read -r f; do
  if [[ -L $f ]]; then echo "$f -> $(readlink "$f")"; else sha256sum "$f"; fi
done; } | sha256sum | cut -c1-12)
REF_TAG=$key

build_target() {
  local target=$1 volumes=()
  if [[ $target == build ]]; then
    # pip inside the build reaches PyPI through the machine's trust store; the mounts exist
    # only while RUN runs (the final stages copy /opt/kubenova and nothing else).
    local pipconf="$CACHE/pip-build.conf"
    # Not over /etc/ssl/certs: the ca-certificates package the build installs writes there.
    printf '[global]\ncert = /run/kubenova-build-ca.crt\n' >"$pipconf"
    volumes=(-v "$CA:/run/kubenova-build-ca.crt:ro" -v "$pipconf:/etc/pip.conf:ro")
  fi
  bah bud --isolation chroot --network host --layers --pull=never \
    --build-arg "DEBIAN_IMAGE=$BASE_REF" "${volumes[@]}" \
    --target "$target" -t "localhost/kubenova-$target:$key" . >/dev/null
}

for target in operator agent; do
  out="$CACHE/kubenova-$target-$key.tar"
  if [[ ! -s $out ]]; then
    start=$SECONDS
    if ! bah inspect --type image "localhost/kubenova-build:$key" >/dev/null 2>&1; then
      log "building the Dockerfile's build stage (cold: a few minutes)"
      build_target build
    fi
    log "building target $target"
    build_target "$target"
    # A push cut short (its caller killed) leaves a partial archive that buildah would
    # refuse to write into.
    rm -f "$out.tmp"
    bah push --quiet "localhost/kubenova-$target:$key" \
      "docker-archive:$out.tmp:kubenova.local/kubenova-$target:$key" >/dev/null
    mv "$out.tmp" "$out"
    # Only the newest archive of a target is kept (each is hundreds of MB).
    find "$CACHE" -maxdepth 1 -name "kubenova-$target-*.tar" ! -name "${out##*/}" -delete
    log "kubenova-$target in $((SECONDS - start)) s -> $out"
  fi
  echo "$target=$out"
done
echo "ref=$REF_TAG"
