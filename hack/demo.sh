#!/usr/bin/env bash
# `make demo`: bring the local kubenova cloud up on this machine and boot a VM from kubectl apply.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$HOME/.cache/kubenova/bin:$PATH"
STATE=${KUBENOVA_DEV_DIR:-$HOME/.local/share/kubenova/dev}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "control plane, CRDs, MinIO, libvirtd, operator and a host agent (kubenova dev up)"
KUBECONFIG=$(kubenova dev up)
export KUBECONFIG
# shellcheck disable=SC1091
set -a; source "$STATE/objectstore/s3.env"; set +a

say "the test guest into the object store (kubenova image upload)"
IMAGE_DIR=$(hack/build-test-image.sh 2>/dev/null | tail -n 1)   # cached: instant
kubenova image upload "$IMAGE_DIR/disk.qcow2" --name busybox-test --min-memory 96 \
  --kernel "$IMAGE_DIR/vmlinuz" --initrd "$IMAGE_DIR/initrd.img" --cmdline "$(cat "$IMAGE_DIR/cmdline")"

say "flavors, a tenant network and volume, and a VM (examples/)"
kubectl apply -f examples/flavors.yaml -f examples/servergroup.yaml -f examples/project.yaml
kubectl apply -f examples/network.yaml -f examples/volume.yaml -f examples/instance.yaml

say "waiting for the VM to run"
for _ in $(seq 1 120); do
  phase=$(kubectl get inst demo -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [[ $phase == Running || $phase == Error ]] && break
  sleep 1
done
kubectl get inst -o wide
kubectl get kubenova
say "the guest's serial console (last lines)"
log=$(kubectl get inst demo -o jsonpath='{.status.console.logPath}')
for _ in $(seq 1 60); do grep -q KUBENOVA-GUEST-READY "$log" 2>/dev/null && break; sleep 1; done
tail -n 15 "$log" || kubectl get inst demo -o jsonpath='{.status.console.tail}'
echo
echo "Point kubectl at it:   export KUBECONFIG=$KUBECONFIG"
echo "Explore:               kubectl get kubenova; kubectl explain instance.spec"
echo "Tear it down:          make down"
