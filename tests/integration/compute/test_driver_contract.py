"""One contract, every compute driver: the fake (libvirt test driver) and libvirt/QEMU for real."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubenova.agents.compute import (
    ComputeDriver,
    DiskAttachment,
    DomainSpec,
    DomainState,
    FileVolume,
    InstanceNotFound,
    LifecycleEvent,
    RootDisk,
)
from kubenova.agents.compute.fake import FakeComputeDriver
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.images.fetcher import KernelBoot
from tests.support.waiting import eventually


@dataclass
class Harness:
    """A driver plus what the contract needs to look behind it."""

    driver: ComputeDriver
    kernel_boot: KernelBoot
    base_image: Path
    overlay: Callable[[str], Path]
    # A driver as the agent would open it after a restart (same host state).
    reopen: Callable[[], ComputeDriver]
    volume_file: Path

    def spec(self, uid: str | None = None, **changes: object) -> DomainSpec:
        fields: dict[str, object] = {
            "uid": uid or str(uuid.uuid4()),
            "namespace": "tenant-a",
            "name": "vm",
            "vcpus": 1,
            "memory_mib": 96,
            "root_disk": RootDisk(self.base_image),
            "kernel_boot": self.kernel_boot,
        }
        fields.update(changes)
        return DomainSpec(**fields)  # type: ignore[arg-type]


def _volume_file(directory: Path) -> Path:
    path = directory / "volume.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), "16M"], check=True)
    return path


@pytest.fixture(
    params=[pytest.param("fake", id="fake"), pytest.param("libvirt", marks=pytest.mark.libvirt)]
)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    opened: list[ComputeDriver] = []
    if request.param == "fake":
        base = tmp_path / "base.qcow2"
        base.touch()
        fake = FakeComputeDriver(tmp_path / "fake")
        opened.append(fake)
        harness = Harness(
            driver=fake,
            kernel_boot=KernelBoot(tmp_path / "vmlinuz", tmp_path / "initrd.img", "console=ttyS0"),
            base_image=base,
            overlay=fake.overlay,
            # The test driver's state lives in its connection: a restart keeps the driver.
            reopen=lambda: fake,
            volume_file=tmp_path / "volume.img",
        )
    else:
        libvirtd = request.getfixturevalue("libvirtd")
        image = request.getfixturevalue("test_image")
        settings = LibvirtSettings(
            uri=libvirtd.uri,
            instances_dir=tmp_path / "instances",
            domain_type="qemu",
            shutdown_timeout=3.0,
        )

        def reopen() -> ComputeDriver:
            driver = LibvirtDriver(settings)
            opened.append(driver)
            return driver

        real = LibvirtDriver(settings)
        opened.append(real)
        harness = Harness(
            driver=real,
            kernel_boot=image.kernel_boot(),
            base_image=image.disk_qcow2,
            overlay=real.files.overlay,
            reopen=reopen,
            volume_file=_volume_file(tmp_path),
        )
    try:
        yield harness
    finally:
        for info in harness.driver.list_instances():
            harness.driver.destroy(info.uid)
        for driver in opened:
            driver.close()


def test_spawn_twice_makes_one_running_domain(harness: Harness) -> None:
    spec = harness.spec()
    first = harness.driver.spawn(spec)
    second = harness.driver.spawn(spec)
    assert first.state is DomainState.RUNNING
    assert second.domain_uuid == first.domain_uuid == spec.domain_uuid
    assert [info.uid for info in harness.driver.list_instances()] == [spec.uid]
    assert harness.overlay(spec.uid).exists()
    info = harness.driver.get_info(spec.uid)
    assert (info.vcpus, info.memory_mib, info.domain_name) == (1, 96, f"kubenova-{spec.uid}")


def test_power_off_then_on(harness: Harness) -> None:
    spec = harness.spec()
    harness.driver.spawn(spec)
    harness.driver.power_off(spec.uid)
    assert harness.driver.get_info(spec.uid).state is DomainState.SHUTOFF
    harness.driver.power_off(spec.uid)  # already off: nothing to do
    harness.driver.power_on(spec.uid)
    assert harness.driver.get_info(spec.uid).state is DomainState.RUNNING
    harness.driver.power_on(spec.uid)  # already on: nothing to do
    assert harness.driver.get_info(spec.uid).state is DomainState.RUNNING


def test_spawn_starts_a_stopped_domain_without_redefining_it(harness: Harness) -> None:
    spec = harness.spec()
    uuid_before = harness.driver.spawn(spec).domain_uuid
    harness.driver.power_off(spec.uid, timeout=0)
    info = harness.driver.spawn(spec)
    assert (info.state, info.domain_uuid) == (DomainState.RUNNING, uuid_before)


def test_reboot_keeps_it_running(harness: Harness) -> None:
    spec = harness.spec()
    harness.driver.spawn(spec)
    harness.driver.reboot(spec.uid)
    assert harness.driver.get_info(spec.uid).state is DomainState.RUNNING
    harness.driver.power_off(spec.uid, timeout=0)
    harness.driver.reboot(spec.uid, hard=True)  # a stopped instance is started
    assert harness.driver.get_info(spec.uid).state is DomainState.RUNNING


def test_destroy_leaves_no_domain_and_no_overlay(harness: Harness) -> None:
    spec = harness.spec()
    harness.driver.spawn(spec)
    harness.driver.destroy(spec.uid)
    with pytest.raises(InstanceNotFound):
        harness.driver.get_info(spec.uid)
    assert harness.driver.list_instances() == []
    assert not harness.overlay(spec.uid).exists()
    harness.driver.destroy(spec.uid)  # gone already: fine


def test_destroy_succeeds_when_another_caller_destroys_the_domain_meanwhile(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's orphan sweep and its reconciler may destroy one domain at once: the
    second finds it gone between its lookup and its power-off, which is success too."""
    driver = harness.driver
    spec = harness.spec()
    driver.spawn(spec)
    lookup = driver._lookup  # type: ignore[attr-defined]  # the race, made deterministic
    raced: list[str] = []

    def lookup_then_lose_it(uid: str) -> object:
        domain = lookup(uid)
        if not raced:
            raced.append(uid)
            driver.destroy(uid)  # the other caller, done first
        return domain

    monkeypatch.setattr(driver, "_lookup", lookup_then_lose_it)
    driver.destroy(spec.uid)
    assert raced == [spec.uid]
    with pytest.raises(InstanceNotFound):
        driver.get_info(spec.uid)
    assert not harness.overlay(spec.uid).exists()


def test_unknown_instance_is_not_found(harness: Harness) -> None:
    uid = str(uuid.uuid4())
    for call in (
        lambda: harness.driver.get_info(uid),
        lambda: harness.driver.power_on(uid),
        lambda: harness.driver.power_off(uid),
        lambda: harness.driver.reboot(uid),
    ):
        with pytest.raises(InstanceNotFound):
            call()


def test_a_restarted_agent_adopts_domains_and_never_duplicates(harness: Harness) -> None:
    specs = [harness.spec(), harness.spec()]
    for spec in specs:
        harness.driver.spawn(spec)
    harness.driver.power_off(specs[1].uid, timeout=0)
    restarted = harness.reopen()
    adopted = {info.uid: info.state for info in restarted.list_instances()}
    assert adopted == {specs[0].uid: DomainState.RUNNING, specs[1].uid: DomainState.SHUTOFF}
    restarted.spawn(specs[0])
    restarted.spawn(specs[1])
    assert len(restarted.list_instances()) == 2
    assert all(info.state is DomainState.RUNNING for info in restarted.list_instances())


def test_list_instances_ignores_other_domains(harness: Harness) -> None:
    # Somebody else's domain on the same hypervisor must never be adopted.
    spec = harness.spec()
    harness.driver.spawn(spec)
    assert [info.uid for info in harness.driver.list_instances()] == [spec.uid]


def test_attach_and_detach_a_volume(harness: Harness) -> None:
    spec = harness.spec()
    harness.driver.spawn(spec)
    attachment = DiskAttachment(FileVolume("vol-1", harness.volume_file), "vdb")
    harness.driver.attach_volume(spec.uid, attachment)
    harness.driver.attach_volume(spec.uid, attachment)  # idempotent
    assert harness.driver.get_info(spec.uid).volume_targets == ("vdb",)
    harness.driver.detach_volume(spec.uid, "vdb")
    assert harness.driver.get_info(spec.uid).volume_targets == ()
    harness.driver.detach_volume(spec.uid, "vdb")  # gone already: fine


def test_spawn_with_volumes_reports_them(harness: Harness) -> None:
    attachment = DiskAttachment(FileVolume("vol-1", harness.volume_file), "vdc")
    spec = harness.spec(volumes=(attachment,))
    assert harness.driver.spawn(spec).volume_targets == ("vdc",)


def test_lifecycle_events_reach_subscribers(harness: Harness) -> None:
    events: list[LifecycleEvent] = []
    lock = threading.Lock()

    def record(event: LifecycleEvent) -> None:
        with lock:
            events.append(event)

    harness.driver.subscribe(record)
    spec = harness.spec()
    harness.driver.spawn(spec)
    harness.driver.power_off(spec.uid, timeout=0)

    def seen() -> list[tuple[str, DomainState | None]]:
        with lock:
            return [(e.detail, e.state) for e in events if e.uid == spec.uid]

    eventually(
        lambda: ("stopped", DomainState.SHUTOFF) in seen(), timeout=10, what="a stopped event"
    )
    assert ("started", DomainState.RUNNING) in seen()


def test_secrets_are_idempotent_and_listed_by_prefix(harness: Harness) -> None:
    prefix = f"kubenova-contract-{uuid.uuid4().hex[:8]}-"  # the libvirtd may be shared
    usage = f"{prefix}1"
    harness.driver.define_secret(usage, b"s3cret", "kubenova iSCSI CHAP secret of Volume n/a")
    harness.driver.define_secret(usage, b"other", "ignored: the secret exists")
    assert harness.driver.list_secrets(prefix) == {
        usage: "kubenova iSCSI CHAP secret of Volume n/a"
    }
    assert harness.driver.secret_defined_at(usage) is not None
    assert usage not in harness.driver.secrets_in_use()  # no domain names it
    harness.driver.undefine_secret(usage)
    harness.driver.undefine_secret(usage)
    assert harness.driver.list_secrets(prefix) == {}
    assert harness.driver.secret_defined_at(usage) is None
