"""Cold migration between two hosts' libvirtds (issue 18, item 4), with one real TCG guest:
the target pulls the stopped guest's overlay and seed through the source's libvirtd
(storage API over the peer URI), the source then forgets it, and the guest boots on the
target with what it had written (a pattern written into its disk) and its seed."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from kubenova.agents.compute import CloudInitSeed, ComputeFailure, DomainSpec, RootDisk
from kubenova.agents.compute.cold_migration import forget_on_source, pull_from_source
from kubenova.agents.compute.spec import domain_name_for
from tests.fixtures.test_image import GuestImage
from tests.integration.compute.test_live_migration import Host, hosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.libvirt

__all__ = ["hosts"]  # the two-libvirtd fixture, shared with the live-migration tests

# Written into the guest's disk on the source, past its filesystem (the overlay is 1 GiB).
PATTERN = ("0x5a", "512M", "64k")


def qemu_io(overlay: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", command, overlay],
        capture_output=True,
        text=True,
        check=False,
    )


def wait_ready(host: Host, uid: str, marker: str, count: int = 1) -> None:
    def seen() -> bool:
        path = host.driver.console_log(uid)
        text = path.read_text(errors="replace") if path and path.exists() else ""
        return text.count(marker) >= count

    eventually(seen, timeout=90, interval=0.05, what=f"{marker} on {host.name}")


def test_a_stopped_guest_moves_with_its_disk_and_seed(
    hosts: tuple[Host, Host], test_image: GuestImage
) -> None:
    a, b = hosts
    uid = str(uuid.uuid4())
    spec = DomainSpec(
        uid=uid,
        namespace="tenant-a",
        name="cold",
        vcpus=1,
        memory_mib=96,
        root_disk=RootDisk(test_image.disk_qcow2, size_gib=1),
        kernel_boot=test_image.kernel_boot(),
        seed=CloudInitSeed(instance_id=f"i-{uid[:8]}", hostname="cold"),
    )
    a.driver.spawn(spec)
    wait_ready(a, uid, test_image.ready_marker)
    with pytest.raises(ComputeFailure, match="runs on the source"):
        forget_on_source(a.libvirtd.uri, a.instances_dir, uid)
    a.driver.power_off(uid, timeout=0)
    source_overlay = a.driver.files.overlay(uid)
    value, offset, length = PATTERN
    assert qemu_io(str(source_overlay), f"write -P {value} {offset} {length}").returncode == 0

    started = time.monotonic()
    pull_from_source(a.libvirtd.uri, a.instances_dir, uid, b.driver.files, spec.root_disk)  # type: ignore[arg-type]
    pulled = time.monotonic() - started
    forget_on_source(a.libvirtd.uri, a.instances_dir, uid)
    forget_on_source(a.libvirtd.uri, a.instances_dir, uid)  # again: nothing left to do
    moved = time.monotonic() - started
    assert not a.defined(uid)
    assert not (a.instances_dir / domain_name_for(uid)).exists()

    target_overlay = b.driver.files.overlay(uid)
    assert target_overlay.stat().st_mode & 0o777 == 0o600
    read = qemu_io(str(target_overlay), f"read -P {value} {offset} {length}")
    assert read.returncode == 0, read
    assert "Pattern verification failed" not in read.stdout, read
    info = subprocess.run(
        ["qemu-img", "info", str(target_overlay)], capture_output=True, text=True, check=True
    ).stdout
    assert f"backing file: {test_image.disk_qcow2.resolve()}" in info, info

    b.driver.spawn(spec)  # finds the pulled overlay and seed and keeps them
    wait_ready(b, uid, test_image.ready_marker)
    console = (b.driver.console_log(uid) or b.instances_dir).read_text(errors="replace")
    assert f"instance-id=i-{uid[:8]}" in console
    b.driver.destroy(uid)
    print(f"\ncold move of a stopped guest: pull {pulled:.2f} s, pull + forget {moved:.2f} s")
