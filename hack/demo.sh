#!/usr/bin/env bash
# `make demo`: bring the local kubenova cloud up on this machine and boot a VM from kubectl apply,
# with a volume exported over iSCSI by the volume service and hot-plugged into it.
# Runs as root (network namespaces and bridges, libvirtd, tgtd). Works from any checkout:
# everything is found relative to this script; the cloud's state is in $KUBENOVA_DEV_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$HOME/.cache/kubenova/bin:$PATH"
STATE=${KUBENOVA_DEV_DIR:-$HOME/.local/share/kubenova/dev}
WAIT=${KUBENOVA_DEMO_TIMEOUT:-180}   # seconds for each step below (TCG guests on a busy machine)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\033[1;31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }

# wait_for WHAT COMMAND...: until COMMAND succeeds, at most $WAIT seconds.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 "$WAIT"); do "$@" >/dev/null && return 0; sleep 1; done
  return 1
}
phase() { kubectl get "$1" "$2" -o jsonpath='{.status.phase}' 2>/dev/null; }
in_phase() { [[ $(phase "$1" "$2") == "$3" ]]; }

say "control plane, CRDs, MinIO, libvirtd, tgtd, operator and a host agent (kubenova dev up)"
KUBECONFIG=$(kubenova dev up)
export KUBECONFIG
# shellcheck disable=SC1091
set -a; source "$STATE/objectstore/s3.env"; set +a

say "the test guest into the object store (kubenova image upload)"
IMAGE_DIR=$(hack/build-test-image.sh 2>/dev/null | tail -n 1)   # cached: instant
kubenova image upload "$IMAGE_DIR/disk.qcow2" --name busybox-test --min-memory 96 \
  --kernel "$IMAGE_DIR/vmlinuz" --initrd "$IMAGE_DIR/initrd.img" --cmdline "$(cat "$IMAGE_DIR/cmdline")"
kubectl get images

say "flavors, a project, a tenant network, a volume and a VM (kubectl apply -R -f examples)"
kubectl apply -R -f examples

say "waiting for the VM to run and the volume to be attached to it"
wait_for "Instance demo Running" in_phase inst demo Running \
  || { kubectl describe inst demo | tail -n 20; fail "Instance demo is $(phase inst demo), not Running"; }
wait_for "Volume data InUse" in_phase vol data InUse \
  || { kubectl describe vol data | tail -n 20; fail "Volume data is $(phase vol data), not InUse"; }
kubectl get inst -o wide
kubectl get vol -o wide
kubectl get kubenova

say "the guest's serial console: its disks, its DHCP lease"
log=$(kubectl get inst demo -o jsonpath='{.status.console.logPath}')
# The guest lists its disks at boot (vda the root disk, then the NoCloud seed and volumes)
# and prints each one hot-plugged later: the volume is whichever other vd* disk has its size.
sectors=$(( $(kubectl get vol data -o jsonpath='{.spec.sizeGiB}') * 2097152 ))
volume_line() { grep -m1 -aoE "KUBENOVA-BLOCK vd[b-z]+ sectors=$sectors|KUBENOVA-BLOCK-ADDED vd[b-z]+" "$log"; }
wait_for "the volume in the guest" volume_line \
  || { tail -n 20 "$log"; fail "the guest's console never showed a $sectors-sector disk besides vda"; }
wait_for "the guest's DHCP lease" grep -aq KUBENOVA-LEASE "$log" || echo "(no DHCP lease on the console yet)"
grep -aE 'KUBENOVA-(BLOCK|SEED|GUEST-READY|NIC|LEASE)' "$log" | tail -n 15
device=$(volume_line | awk '{print $2}')
echo "-> Volume data ($(kubectl get vol data -o jsonpath='{.spec.sizeGiB}') GiB over iSCSI) is /dev/$device in the guest"
echo
echo "Point kubectl at it:   export KUBECONFIG=$KUBECONFIG"
state=$(dirname "$KUBECONFIG")
echo "Dashboard:             $(cat "$state/dashboard.url")  (log in as dev, password in $state/openstack-password)"
echo "OpenStack CLI:         export OS_CLIENT_CONFIG_FILE=$state/clouds.yaml OS_CLOUD=kubenova-dev"
echo "Explore:               kubectl get kubenova; kubectl explain instance.spec"
echo "Tear it down:          make down"
