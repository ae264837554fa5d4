#!/usr/bin/env bash
# `make demo`: bring the local kubenova cloud up on this machine and show it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$HOME/.cache/kubenova/bin:$PATH"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "control plane, CRDs and kubenova services (kubenova dev up)"
KUBECONFIG=$(kubenova dev up)
export KUBECONFIG

say "the catalog and a tenant's resources (examples/)"
kubectl apply -f examples/flavors.yaml -f examples/servergroup.yaml -f examples/project.yaml
if kubectl get images.kubenova.io busybox-test >/dev/null 2>&1 || [[ -z ${KUBENOVA_S3_ENDPOINT:-} ]]; then
  kubectl apply -f examples/image.yaml
fi
kubectl apply -f examples/network.yaml -f examples/volume.yaml -f examples/instance.yaml

say "kubectl get kubenova"
kubectl get kubenova
say "kubectl explain instance.spec"
kubectl explain instance.spec | head -40
echo
echo "Point kubectl at it:   export KUBECONFIG=$KUBECONFIG"
echo "Tear it down:          make down"
