"""Real guests under libvirt/QEMU (TCG here): boot, seed, hot-plug, ACPI power, auto type."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubenova.agents.compute import (
    CloudInitSeed,
    DiskAttachment,
    DomainSpec,
    DomainState,
    FileVolume,
    LifecycleEvent,
    RootDisk,
)
from kubenova.agents.compute.domain_type import KernelProbe, resolve_domain_type
from kubenova.agents.compute.domain_xml import DomainType
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from tests.fixtures.test_image import GuestImage
from tests.support.waiting import eventually

pytestmark = pytest.mark.libvirt


@pytest.fixture
def driver(libvirtd: PrivateLibvirtd, tmp_path: Path) -> Iterator[LibvirtDriver]:
    real = LibvirtDriver(
        LibvirtSettings(
            uri=libvirtd.uri,
            instances_dir=tmp_path / "instances",
            domain_type="qemu",
            shutdown_timeout=20.0,
        )
    )
    try:
        yield real
    finally:
        for info in real.list_instances():
            real.destroy(info.uid)
        real.close()


def a_guest(image: GuestImage, **changes: object) -> DomainSpec:
    fields: dict[str, object] = {
        "uid": str(uuid.uuid4()),
        "namespace": "tenant-a",
        "name": "guest",
        "vcpus": 1,
        "memory_mib": 96,
        "root_disk": RootDisk(image.disk_qcow2),
        "kernel_boot": image.kernel_boot(),
    }
    fields.update(changes)
    return DomainSpec(**fields)  # type: ignore[arg-type]


def console(driver: LibvirtDriver, uid: str) -> str:
    path = driver.console_log(uid)
    return path.read_text(errors="replace") if path is not None and path.exists() else ""


def wait_for_console(driver: LibvirtDriver, uid: str, text: str, *, count: int = 1) -> None:
    eventually(
        lambda: console(driver, uid).count(text) >= count,
        timeout=90,
        interval=0.02,
        what=f"{text!r} x{count} on the console of {uid}",
    )


def test_guest_boots_to_the_marker_and_reads_its_seed(
    driver: LibvirtDriver, test_image: GuestImage, record_property: Callable[[str, object], None]
) -> None:
    spec = a_guest(test_image)
    spec = a_guest(
        test_image,
        uid=spec.uid,
        seed=CloudInitSeed(
            instance_id=f"i-{spec.uid[:8]}",
            hostname="guest",
            ssh_authorized_keys=("ssh-ed25519 AAAAC3 t",),
        ),
    )
    started = time.monotonic()
    info = driver.spawn(spec)
    wait_for_console(driver, spec.uid, test_image.ready_marker)
    seconds = time.monotonic() - started
    record_property("define_start_to_marker_seconds", round(seconds, 2))
    print(f"\ndefine+start -> {test_image.ready_marker}: {seconds:.2f} s (TCG)")
    assert info.state is DomainState.RUNNING
    text = console(driver, spec.uid)
    assert f"instance-id=i-{spec.uid[:8]}" in text
    assert "KUBENOVA-BLOCK vda" in text


def test_the_disk_image_boots_by_itself(driver: LibvirtDriver, test_image: GuestImage) -> None:
    # No kernel in the domain: SeaBIOS -> syslinux on the image -> the same kernel.
    spec = a_guest(test_image, kernel_boot=None)
    driver.spawn(spec)
    wait_for_console(driver, spec.uid, test_image.ready_marker)


def test_hot_plugged_volume_reaches_the_guest_and_leaves_it(
    driver: LibvirtDriver, test_image: GuestImage, tmp_path: Path
) -> None:
    volume = tmp_path / "volume.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(volume), "32M"], check=True)
    spec = a_guest(test_image)
    driver.spawn(spec)
    wait_for_console(driver, spec.uid, test_image.ready_marker)
    driver.attach_volume(spec.uid, DiskAttachment(FileVolume("vol-1", volume), "vdb"))
    wait_for_console(driver, spec.uid, "KUBENOVA-BLOCK-ADDED")
    assert driver.get_info(spec.uid).volume_targets == ("vdb",)
    driver.detach_volume(spec.uid, "vdb")
    wait_for_console(driver, spec.uid, "KUBENOVA-BLOCK-REMOVED")
    assert driver.get_info(spec.uid).volume_targets == ()


def test_power_off_is_an_acpi_shutdown_when_the_guest_listens(
    driver: LibvirtDriver, test_image: GuestImage
) -> None:
    spec = a_guest(test_image)
    driver.spawn(spec)
    wait_for_console(driver, spec.uid, test_image.ready_marker)
    started = time.monotonic()
    driver.power_off(spec.uid)
    seconds = time.monotonic() - started
    print(f"\nACPI power off: {seconds:.2f} s")
    assert "KUBENOVA-GUEST-POWEROFF" in console(driver, spec.uid)
    assert seconds < driver.shutdown_timeout
    assert driver.get_info(spec.uid).state is DomainState.SHUTOFF


def test_reboot_boots_the_guest_again(driver: LibvirtDriver, test_image: GuestImage) -> None:
    spec = a_guest(test_image)
    driver.spawn(spec)
    wait_for_console(driver, spec.uid, test_image.ready_marker)
    driver.reboot(spec.uid)
    wait_for_console(driver, spec.uid, test_image.ready_marker, count=2)
    driver.reboot(spec.uid, hard=True)
    wait_for_console(driver, spec.uid, test_image.ready_marker, count=3)
    assert driver.get_info(spec.uid).state is DomainState.RUNNING


def test_auto_domain_type_picks_one_that_boots(
    libvirtd: PrivateLibvirtd, test_image: GuestImage, tmp_path: Path
) -> None:
    # KVM boots this kernel in ~1 s and TCG in ~3 s: 15 s is plenty for a working KVM.
    probe = KernelProbe(test_image.kernel_boot(), test_image.ready_marker.encode(), timeout=15)
    started = time.monotonic()
    chosen = resolve_domain_type("auto", libvirtd.uri, tmp_path / "probe", probe)
    print(f"\nauto -> {chosen.value} in {time.monotonic() - started:.1f} s")
    settings = LibvirtSettings(
        uri=libvirtd.uri, instances_dir=tmp_path / "instances", domain_type=chosen.value
    )
    driver = LibvirtDriver(settings)
    try:
        assert driver.settings.domain_type is chosen
        spec = a_guest(test_image)
        driver.spawn(spec)
        wait_for_console(driver, spec.uid, test_image.ready_marker)
    finally:
        for info in driver.list_instances():
            driver.destroy(info.uid)
        driver.close()
    assert chosen in (DomainType.KVM, DomainType.QEMU)


def test_the_driver_outlives_a_libvirtd_crash(
    driver: LibvirtDriver, libvirtd: PrivateLibvirtd, test_image: GuestImage
) -> None:
    spec = a_guest(test_image)
    driver.spawn(spec)
    wait_for_console(driver, spec.uid, test_image.ready_marker)
    events: list[LifecycleEvent] = []
    driver.subscribe(events.append)

    libvirtd.crash_and_restart()

    # The guest ran through it, and the driver, on a new connection, still sees and drives it.
    assert [i.uid for i in driver.list_instances()] == [spec.uid]
    assert driver.get_info(spec.uid).state is DomainState.RUNNING
    assert console(driver, spec.uid).count(test_image.ready_marker) == 1
    driver.power_off(spec.uid, timeout=0)
    driver.power_on(spec.uid)
    wait_for_console(driver, spec.uid, test_image.ready_marker, count=2)
    # Lifecycle events come on the new connection too.
    eventually(
        lambda: {e.detail for e in events if e.uid == spec.uid} >= {"stopped", "started"},
        what="stopped and started events after the restart",
    )
