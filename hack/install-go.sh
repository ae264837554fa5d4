#!/usr/bin/env bash
# Make sure `go` >= GO_MIN is on PATH for hack/controlplane.sh (its wrapper modules say
# `go 1.24`); hack/install-deps.sh runs this, as root. A Go that is new enough is left alone.
#
# Debian 12's golang-go is Go 1.19: too old to build the wrappers, and too old for
# GOTOOLCHAIN (Go >= 1.21 switches toolchains itself). It can still fetch modules, so it
# fetches the very module GOTOOLCHAIN=$GO_TOOLCHAIN would: golang.org/toolchain@v0.0.1-
# <version>.linux-<arch>, a whole Go distribution, from the Go module proxy (about 76 MB,
# once) into $KUBENOVA_CACHE/go/mod, and links $GO_LINK_DIR/go (/usr/local/bin, which comes
# before Debian's /usr/bin on PATH) to it.
#
# Env: KUBENOVA_GO_TOOLCHAIN (default go1.27.3, the one toolchain this project's Go module
# proxy serves for GOTOOLCHAIN), KUBENOVA_CACHE (default ~/.cache/kubenova),
# KUBENOVA_GO_LINK_DIR (default /usr/local/bin), GO (the go to check first: default `go`
# on PATH).
set -euo pipefail

GO_MIN=1.24
GO_TOOLCHAIN=${KUBENOVA_GO_TOOLCHAIN:-go1.27.3}
CACHE=${KUBENOVA_CACHE:-$HOME/.cache/kubenova}
LINK_DIR=${KUBENOVA_GO_LINK_DIR:-/usr/local/bin}
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

log() { printf '[install-go] %s\n' "$*" >&2; }
go_version() { "$1" version 2>/dev/null | awk '{print $3}' | sed 's/^go//'; }
new_enough() {
  local v
  v=$(go_version "$1") && [[ -n $v ]] || return 1
  [[ $(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -n1) == "$GO_MIN" ]]
}

bootstrap=${GO:-$(command -v go || true)}
if [[ -n $bootstrap ]] && new_enough "$bootstrap"; then
  exit 0
fi

case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
module="golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-$arch"
modcache="$CACHE/go/mod"
goroot="$modcache/$module"
link() {
  $SUDO mkdir -p "$LINK_DIR"
  $SUDO ln -sfn "$goroot/bin/go" "$LINK_DIR/go"
  $SUDO ln -sfn "$goroot/bin/gofmt" "$LINK_DIR/gofmt"
  log "$LINK_DIR/go -> $("$LINK_DIR/go" version)"
}
# A toolchain already in the cache needs no bootstrap Go: don't install one to fetch nothing.
if new_enough "$goroot/bin/go"; then
  link
  exit 0
fi
if [[ -z $bootstrap ]]; then
  log "no go on PATH: installing Debian's golang-go to fetch a newer toolchain with"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends golang-go
  bootstrap=/usr/bin/go
fi

log "go $(go_version "$bootstrap") is older than $GO_MIN: fetching $module from the Go module proxy"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Outside any module; -modcacherw so the cache can be removed with rm -rf.
(cd "$scratch" && GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=-modcacherw \
  GOPATH="$CACHE/go/path" GOMODCACHE="$modcache" GOCACHE="$scratch/cache" \
  "$bootstrap" mod download "$module")
# Module zips keep no file modes: set the execute bits GOTOOLCHAIN's own unpacking sets.
chmod +x "$goroot"/bin/* "$goroot"/pkg/tool/*/*
new_enough "$goroot/bin/go" || { log "$goroot/bin/go does not run: $("$goroot/bin/go" version 2>&1)"; exit 1; }
link
