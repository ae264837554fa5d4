#!/usr/bin/env bash
# Build the tiny bootable test guest used by the compute driver tests and `kubenova dev`.
#
# Output (cached; a second run with the same script prints the cached directory at once):
#   ~/.cache/kubenova/images/<key>/
#     vmlinuz        Debian cloud kernel (apt-get download + dpkg -x, no install)
#     initrd.img     busybox-static initramfs: virtio modules, /init (see below)
#     cmdline        kernel command line for direct kernel boot
#     disk.raw       bootable disk: FAT "superfloppy" with syslinux + vmlinuz + initrd.img
#     disk.qcow2     the same disk as qcow2: what an Image resource points at
#     manifest.json  paths, marker strings, kernel package, sizes
#
# Why both: tests boot kernel+initrd directly (<os><kernel>/<initrd>), the fastest path under
# TCG, with disk.qcow2 as the instance's root disk (a qcow2 overlay on it). disk.qcow2 also
# boots by itself (SeaBIOS -> syslinux -> the same kernel and initramfs), so it is a real
# Image an instance can boot from without any kernel given in the domain.
#
# The guest's /init prints to ttyS0 (console=ttyS0): its block devices, the NoCloud seed's
# instance-id (an iso9660 disk labelled cidata), KUBENOVA-GUEST-READY, then a DHCP lease on
# eth0 (udhcpc -s) if there is a NIC, and block devices hot-added or removed afterwards.
# A line `kubenova-test-dhcp-every: N` in the seed's user-data (a key cloud-init ignores) makes
# it ask for a lease again every N seconds, from scratch (DHCPDISCOVER), and print each one:
# tests see on the console what address the guest would get after any event on the host.
# A line `kubenova-test-tick-ms: N` makes it print `KUBENOVA-TICK <count>` every N ms: a live
# migration test sees the counter go on across the move and measures the guest's pause.
# The ACPI power button powers it off (busybox acpid), so graceful shutdown works.
#
# Env: KUBENOVA_IMAGE_CACHE (cache root), KUBENOVA_TEST_KERNEL (a linux-image package name).
# Needs (hack/apt-packages.txt): busybox-static syslinux syslinux-common mtools dosfstools
# qemu-utils genisoimage; apt lists (apt-get update) to download the kernel package.
set -euo pipefail

CACHE_ROOT=${KUBENOVA_IMAGE_CACHE:-$HOME/.cache/kubenova/images}
READY_MARKER=KUBENOVA-GUEST-READY
CMDLINE="console=ttyS0 quiet panic=-1"
# Load order matters: each module's dependencies come before it (checked below).
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk
failover net_failover virtio_net cdrom isofs evdev button"
SCRIPT_HASH=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)

log() { echo "build-test-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

cached_dir() {
    # Newest complete build of this very script; no apt call, so it is instant and offline.
    local dir
    for dir in $(ls -1dt "$CACHE_ROOT"/test-guest-"$SCRIPT_HASH"-* 2>/dev/null); do
        if [[ -f $dir/.complete ]]; then echo "$dir"; return 0; fi
    done
    return 1
}

pick_kernel_package() {
    if [[ -n ${KUBENOVA_TEST_KERNEL:-} ]]; then echo "$KUBENOVA_TEST_KERNEL"; return; fi
    local pkg
    pkg=$(apt-cache pkgnames linux-image-6.1.0- | grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' \
        | sort -V | tail -n1 || true)
    if [[ -z $pkg ]]; then
        pkg=$(apt-cache pkgnames linux-image- | grep -E '^linux-image-[0-9.]+.*-cloud-amd64$' \
            | grep -vE -- '-(dbg|unsigned)$' | sort -V | tail -n1 || true)
    fi
    [[ -n $pkg ]] || die "no linux-image-*-cloud-amd64 package known to apt (run apt-get update)"
    echo "$pkg"
}

for tool in busybox apt-get dpkg syslinux mcopy mkfs.fat qemu-img sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found: run hack/install-deps.sh"
done
[[ $(busybox 2>&1 | head -n1) == *BusyBox* ]] || die "busybox is not BusyBox"
if ldd "$(command -v busybox)" >/dev/null 2>&1; then die "busybox is dynamic: install busybox-static"; fi

if dir=$(cached_dir) && [[ -z ${KUBENOVA_TEST_KERNEL:-} ]]; then
    echo "$dir"
    exit 0
fi

KERNEL_PKG=$(pick_kernel_package)
OUT="$CACHE_ROOT/test-guest-$SCRIPT_HASH-${KERNEL_PKG#linux-image-}"
if [[ -f $OUT/.complete ]]; then echo "$OUT"; exit 0; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kubenova-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "kernel package $KERNEL_PKG -> $OUT"

# -- kernel ---------------------------------------------------------------------------------
(cd "$WORK" && apt-get download -q "$KERNEL_PKG" >/dev/null 2>&1) \
    || (cd "$WORK" && apt-get download "$KERNEL_PKG") || die "apt-get download $KERNEL_PKG failed"
dpkg -x "$WORK"/"$KERNEL_PKG"_*.deb "$WORK/kernel"
VMLINUZ=$(ls "$WORK"/kernel/boot/vmlinuz-*)
MODDIR=$(ls -d "$WORK"/kernel/lib/modules/*)

# -- initramfs ------------------------------------------------------------------------------
ROOT="$WORK/initramfs"
mkdir -p "$ROOT"/{bin,dev,proc,sys,mnt/seed,etc/acpi/PWRF,lib/modules}
cp "$(command -v busybox)" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
loaded=" "
for mod in $MODULES; do
    src=$(find "$MODDIR" -name "$mod.ko" -o -name "$mod.ko.xz" -o -name "$mod.ko.zst" | head -n1)
    [[ -n $src ]] || die "module $mod not in $KERNEL_PKG"
    case $src in
        *.xz) xz -dc "$src" >"$ROOT/lib/modules/$mod.ko" ;;
        *.zst) zstd -qdc "$src" >"$ROOT/lib/modules/$mod.ko" ;;
        *) cp "$src" "$ROOT/lib/modules/$mod.ko" ;;
    esac
    deps=$(grep -a -o 'depends=[a-z0-9_,-]*' "$ROOT/lib/modules/$mod.ko" | head -n1 | cut -d= -f2)
    for dep in ${deps//,/ }; do
        [[ $loaded == *" $dep "* ]] || die "module $mod needs $dep loaded before it"
    done
    loaded="$loaded$mod "
done
echo "$MODULES" | tr -s ' \n' '\n\n' >"$ROOT/etc/modules-order"
# Without init there is nobody to reboot the machine: the power button powers off at once.
printf '#!/bin/sh\necho KUBENOVA-GUEST-POWEROFF\npoweroff -f\n' >"$ROOT/etc/acpi/PWRF/00000080"
chmod +x "$ROOT/etc/acpi/PWRF/00000080"

cat >"$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc calls this with the lease in the environment; apply it and say so on the console.
# KUBENOVA_DHCP_AGAIN: a periodic re-request keeps the address it has while it asks.
case "$1" in
    deconfig)
        [ -n "$KUBENOVA_DHCP_AGAIN" ] || ip addr flush dev "$interface"
        ip link set "$interface" up ;;
    bound|renew)
        if ! ip -o addr show dev "$interface" | grep -q " $ip/${mask:-24} "; then
            ip addr flush dev "$interface"
            ip addr add "$ip/${mask:-24}" dev "$interface"
        fi
        [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
        echo "KUBENOVA-LEASE interface=$interface ip=$ip mask=${mask:-24} router=$router" \
            "mac=$(cat /sys/class/net/$interface/address) server=$serverid" >/dev/console ;;
esac
exit 0
EOF
chmod +x "$ROOT/etc/udhcpc.script"

cat >"$ROOT/init" <<EOF
#!/bin/sh
# kubenova test guest: print what the host gave us on the serial console, then idle.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in \$(cat /etc/modules-order); do
    insmod /lib/modules/\$m.ko || echo "KUBENOVA-INSMOD-FAILED \$m"
done
# Listening for the power button before the marker: whoever saw the marker may press it.
# -d: log to the console; without it busybox acpid exits for want of /var/log/acpid.log.
acpid -d -c /etc/acpi &
echo "KUBENOVA-BLOCK-DEVICES \$(ls /sys/block | tr '\n' ' ')"
for d in /sys/block/*; do
    [ -e "\$d/size" ] && echo "KUBENOVA-BLOCK \${d##*/} sectors=\$(cat \$d/size)"
done
for d in /dev/vd? /dev/sr?; do
    [ -b "\$d" ] || continue
    if mount -t iso9660 -o ro "\$d" /mnt/seed 2>/dev/null; then
        if [ -f /mnt/seed/meta-data ]; then
            id=\$(sed -n 's/^instance-id: *//p' /mnt/seed/meta-data)
            echo "KUBENOVA-SEED device=\${d##*/} instance-id=\$id"
            [ -f /mnt/seed/user-data ] && echo "KUBENOVA-SEED user-data-bytes=\$(wc -c < /mnt/seed/user-data)"
            dhcp_every=\$(sed -n 's/^kubenova-test-dhcp-every: *\([0-9][0-9]*\).*/\1/p' /mnt/seed/user-data 2>/dev/null)
            tick_ms=\$(sed -n 's/^kubenova-test-tick-ms: *\([0-9][0-9]*\).*/\1/p' /mnt/seed/user-data 2>/dev/null)
        fi
        umount /mnt/seed
    fi
done
echo "$READY_MARKER"
if [ -n "\$tick_ms" ]; then
    (tick=0; while :; do echo "KUBENOVA-TICK \$tick"; tick=\$((tick + 1)); usleep \$((tick_ms * 1000)); done) &
fi
if [ -e /sys/class/net/eth0 ]; then
    ip link set lo up
    ip link set eth0 up
    echo "KUBENOVA-NIC eth0 mac=\$(cat /sys/class/net/eth0/address)"
    udhcpc -i eth0 -s /etc/udhcpc.script -t 5 -T 1 -A 2 -b -q >/dev/null 2>&1 || echo "KUBENOVA-DHCP-FAILED"
    if [ -n "\$dhcp_every" ]; then
        echo "KUBENOVA-DHCP-EVERY \$dhcp_every"
        while sleep "\$dhcp_every"; do
            KUBENOVA_DHCP_AGAIN=1 udhcpc -i eth0 -s /etc/udhcpc.script -t 2 -T 1 -n -q >/dev/null 2>&1 \
                || echo "KUBENOVA-DHCP-FAILED"
        done &
    fi
fi
known=" \$(ls /sys/block | tr '\n' ' ')"
while :; do
    now=" \$(ls /sys/block | tr '\n' ' ')"
    for b in \$now; do case "\$known" in *" \$b "*) ;; *) echo "KUBENOVA-BLOCK-ADDED \$b";; esac; done
    for b in \$known; do case "\$now" in *" \$b "*) ;; *) echo "KUBENOVA-BLOCK-REMOVED \$b";; esac; done
    known="\$now"
    sleep 1
done
EOF
chmod +x "$ROOT/init"
# The kernel opens /dev/console before /init mounts devtmpfs.
mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null || log "mknod failed (not root?): relying on the kernel's default /dev/console"
(cd "$ROOT" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -9n >"$WORK/initrd.img"

# -- bootable disk: FAT superfloppy with syslinux (no partition table, no loop devices) ------
STAGE="$WORK/out"
mkdir -p "$STAGE"
cp "$VMLINUZ" "$STAGE/vmlinuz"
cp "$WORK/initrd.img" "$STAGE/initrd.img"
echo "$CMDLINE" >"$STAGE/cmdline"
DISK_MB=$(( ( $(stat -c %s "$STAGE/vmlinuz") + $(stat -c %s "$STAGE/initrd.img") ) / 1048576 + 8 ))
mkfs.fat -C -n KUBENOVA "$STAGE/disk.raw" $((DISK_MB * 1024)) >/dev/null
syslinux --install "$STAGE/disk.raw"
cat >"$WORK/syslinux.cfg" <<EOF
DEFAULT kubenova
PROMPT 0
TIMEOUT 0
LABEL kubenova
  KERNEL /vmlinuz
  APPEND initrd=/initrd.img $CMDLINE
EOF
export MTOOLS_SKIP_CHECK=1
mcopy -i "$STAGE/disk.raw" "$WORK/syslinux.cfg" "$STAGE/vmlinuz" "$STAGE/initrd.img" ::/
qemu-img convert -q -f raw -O qcow2 "$STAGE/disk.raw" "$STAGE/disk.qcow2"

KERNEL_VERSION=$(dpkg-deb -f "$WORK"/"$KERNEL_PKG"_*.deb Version)
cat >"$STAGE/manifest.json" <<EOF
{
  "kernel_package": "$KERNEL_PKG",
  "kernel_version": "$KERNEL_VERSION",
  "busybox_version": "$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "cmdline": "$CMDLINE",
  "disk_raw": "disk.raw",
  "disk_qcow2": "disk.qcow2",
  "ready_marker": "$READY_MARKER",
  "modules": "$(echo $MODULES)"
}
EOF

mkdir -p "$CACHE_ROOT"
rm -rf "$OUT.tmp"
mv "$STAGE" "$OUT.tmp"
touch "$OUT.tmp/.complete"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "built in $SECONDS s"
echo "$OUT"
