#!/usr/bin/env bash
# Build (once) and cache the upstream binaries kubenova tests against:
# kube-apiserver, etcd, helm, minio, (when the machine has none) kubectl,
# kube-scheduler (`bench.placements --peer` and the kubelet cluster), and for the real
# single-node cluster (kubenova/devcluster/node.py) kubelet, kube-controller-manager,
# kube-proxy, CoreDNS and a pause binary for the sandbox image.
# Each is built from its Go module through the Go module proxy and cached as
# ~/.cache/kubenova/bin/<name>-<version>; a cached binary is never rebuilt.
#
# usage: hack/controlplane.sh [all|node|kube-apiserver|kube-scheduler|etcd|helm|kubectl|minio|
#                              kubelet|kube-controller-manager|kube-proxy|coredns|pause] ...
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.33.5}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.21}"
HELM_VERSION="${HELM_VERSION:-v3.18.4}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.2}"
# The pause program is ours (below); its version names its source revision.
PAUSE_VERSION=v1
CACHE="${KUBENOVA_CACHE:-$HOME/.cache/kubenova}"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/build"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

log() { printf '[controlplane] %s\n' "$*" >&2; }

need_go() {
  command -v go >/dev/null || { log "go is required to build $1 (install golang >= 1.24)"; exit 1; }
}

# build NAME VERSION FUNCTION: run FUNCTION only when the cached binary is missing.
build() {
  local name=$1 version=$2 fn=$3 out="$BIN/$1-$2" lock
  if [[ ! -x "$out" ]]; then
    # Test sessions started together on a fresh machine must not build into the
    # same directories at once: the second waits for the first, then finds the cache.
    exec {lock}>"$BIN/.$name-$version.lock"
    flock "$lock"
    if [[ ! -x "$out" ]]; then
      need_go "$name"
      log "building $name $version (cold build, a few minutes; cached afterwards)"
      local start=$SECONDS
      "$fn" "$out.tmp" "$version"
      mv "$out.tmp" "$out"
      log "built $name $version in $((SECONDS - start)) s -> $out"
    fi
    exec {lock}>&-
  fi
  ln -sfn "$name-$version" "$BIN/$name"
}

# k8s.io/kubernetes is not meant to be required as a module: every staging
# module is replaced by its published v0.X.Y twin.
kube_wrapper() {
  local cmd=$1 version=$2 dir="$CACHE/build/$1-$2"
  local minor=${version#v1.}; minor=${minor%%.*}
  local staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
    sample-apiserver sample-cli-plugin sample-controller"
  rm -rf "$dir"; mkdir -p "$dir"
  {
    echo "module kubenova.local/$cmd"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    for m in $staging; do echo "replace k8s.io/$m => k8s.io/$m v0.${version#v1.}"; done
  } >"$dir/go.mod"
  echo "$dir"
}

build_kube_apiserver() {
  local out=$1 version=$2 dir
  dir=$(kube_wrapper kube-apiserver "$version")
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO
  kube_build "$dir" "$out" "$version"
}

# Built from the same wrapper module as kube-apiserver: same Go modules, same version,
# so `bench.placements --peer` compares two clients of one apiserver build.
build_kube_scheduler() {
  local out=$1 version=$2 dir
  dir=$(kube_wrapper kube-scheduler "$version")
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand()))
}
GO
  kube_build "$dir" "$out" "$version"
}

build_kubectl() {
  local out=$1 version=$2 dir
  dir=$(kube_wrapper kubectl "$version")
  cat >"$dir/main.go" <<'GO'
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
GO
  kube_build "$dir" "$out" "$version"
}

kube_build() {
  local dir=$1 out=$2 version=$3
  local minor=${version#v1.}; minor=${minor%%.*}
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || (cd "$dir" && go mod tidy)) 
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -o "$out" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$version" .)
}

build_etcd() {
  local out=$1 version=$2 dir="$CACHE/build/etcd-$2"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module kubenova.local/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$version" >"$dir/go.mod"
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod tidy && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out" .)
}

build_helm() {
  local out=$1 version=$2 gobin="$CACHE/build/helm-$2"
  mkdir -p "$gobin"
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" "helm.sh/helm/v3/cmd/helm@$version"
  mv "$gobin/helm" "$out"
}

# MinIO publishes no release tags as Go module versions (source-only since Oct 2025), so
# the pin is a pseudo-version. Its go.mod has no replace directives: a plain `go install`
# builds it. The ldflags stamp what its release build derives from git (see its
# buildscripts/gen-ldflags.go), so `minio --version` and the version recorded in object
# metadata name this commit instead of DEVELOPMENT.GOGET.
build_minio() {
  local out=$1 version=$2 gobin="$CACHE/build/minio-$2" stamp=() pkg=github.com/minio/minio/cmd
  if [[ $version =~ ^v0\.0\.0-([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})-([0-9a-f]{12})$ ]]; then
    local m=("${BASH_REMATCH[@]}")
    local date="${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z"
    stamp=(-X "$pkg.Version=$date" -X "$pkg.ReleaseTag=DEVELOPMENT.${date//:/-}"
      -X "$pkg.CommitID=${m[7]}" -X "$pkg.ShortCommitID=${m[7]}" -X "$pkg.CopyrightYear=${m[1]}")
  fi
  mkdir -p "$gobin"
  GOBIN="$gobin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w ${stamp[*]}" \
    "github.com/minio/minio@$version"
  mv "$gobin/minio" "$out"
}

# The node components: same wrapper module and version as kube-apiserver. The v1.33
# command constructors take no context.
build_kube_cmd() {
  local out=$1 version=$2 name=$3 pkg=$4 ctor=$5 dir
  dir=$(kube_wrapper "$name" "$version")
  cat >"$dir/main.go" <<GO
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/$pkg"
)

func main() {
	os.Exit(cli.Run(app.$ctor()))
}
GO
  kube_build "$dir" "$out" "$version"
}
build_kubelet() { build_kube_cmd "$1" "$2" kubelet cmd/kubelet/app NewKubeletCommand; }
build_kube_controller_manager() {
  build_kube_cmd "$1" "$2" kube-controller-manager cmd/kube-controller-manager/app NewControllerManagerCommand
}
build_kube_proxy() { build_kube_cmd "$1" "$2" kube-proxy cmd/kube-proxy/app NewProxyCommand; }

# CoreDNS serves the cluster's DNS, so a pod's lookup never leaves the machine. The
# release's own main imports every plugin (each cloud SDK: a ~30 min cold build); ours is
# the documented subset build: a wrapper main importing coremain and only the plugins
# the node's Corefile (kubenova/devcluster/node.py) uses, with dnsserver.Directives set to
# that list in the release's plugin.cfg order. The cache key holds the list, so changing
# it builds a new binary.
COREDNS_PLUGINS=(bind errors kubernetes)
coredns_key() {
  printf '%s-%s' "$COREDNS_VERSION" "$(printf '%s\n' "${COREDNS_PLUGINS[@]}" | sha256sum | cut -c1-8)"
}
build_coredns() {
  local out=$1 version=${COREDNS_VERSION} dir="$CACHE/build/coredns-$2" p
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module kubenova.local/coredns\n\ngo 1.24\n\nrequire github.com/coredns/coredns %s\n' \
    "$version" >"$dir/go.mod"
  {
    echo 'package main'
    echo
    echo 'import ('
    echo '	"github.com/coredns/coredns/core/dnsserver"'
    echo '	"github.com/coredns/coredns/coremain"'
    for p in "${COREDNS_PLUGINS[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/$p\""; done
    echo ')'
    echo
    echo 'func init() {'
    echo '	dnsserver.Directives = []string{'
    for p in "${COREDNS_PLUGINS[@]}"; do echo "		\"$p\","; done
    echo '	}'
    echo '}'
    echo
    echo 'func main() { coremain.Run() }'
  } >"$dir/main.go"
  (cd "$dir" && go mod tidy && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out" .)
}

# The sandbox ("pause") container's program: holds the pod's namespaces, reaps zombies,
# exits on SIGINT/SIGTERM. Ours, so no image registry is needed for the sandbox image.
build_pause() {
  local out=$1 dir="$CACHE/build/pause-$2"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module kubenova.local/pause\n\ngo 1.24\n' >"$dir/go.mod"
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out" .)
}

want=("$@")
[[ ${#want[@]} -eq 0 || ${want[0]} == all ]] && want=(etcd kube-apiserver kube-scheduler kubectl helm minio)
# `node`: everything the kubelet cluster runs besides etcd/apiserver/scheduler/helm.
[[ ${want[0]} == node ]] && want=(etcd kube-apiserver kube-scheduler helm kubelet
  kube-controller-manager kube-proxy coredns pause)
for what in "${want[@]}"; do
  case $what in
    etcd) build etcd "$ETCD_VERSION" build_etcd ;;
    kube-apiserver) build kube-apiserver "$KUBE_VERSION" build_kube_apiserver ;;
    kube-scheduler) build kube-scheduler "$KUBE_VERSION" build_kube_scheduler ;;
    kubectl)
      # The machine's kubectl serves when it is new enough; otherwise build ours.
      if ! command -v kubectl >/dev/null; then build kubectl "$KUBE_VERSION" build_kubectl
      else ln -sfn "$(command -v kubectl)" "$BIN/kubectl"; fi ;;
    helm) build helm "$HELM_VERSION" build_helm ;;
    minio) build minio "$MINIO_VERSION" build_minio ;;
    kubelet) build kubelet "$KUBE_VERSION" build_kubelet ;;
    kube-controller-manager) build kube-controller-manager "$KUBE_VERSION" build_kube_controller_manager ;;
    kube-proxy) build kube-proxy "$KUBE_VERSION" build_kube_proxy ;;
    coredns) build coredns "$(coredns_key)" build_coredns ;;
    pause) build pause "$PAUSE_VERSION" build_pause ;;
    *) log "unknown component: $what"; exit 2 ;;
  esac
done
