"""The domain XML builder, read back with ElementTree: what libvirt will be told."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kubenova.agents.compute import (
    DiskAttachment,
    DomainSpec,
    FileVolume,
    IscsiAuth,
    IscsiVolume,
    Nic,
    RootDisk,
)
from kubenova.agents.compute.chap_secrets import described_volume, secret_description
from kubenova.agents.compute.domain_xml import (
    METADATA_NS,
    DomainFiles,
    DomainSettings,
    DomainType,
    build_domain_xml,
    build_secret_xml,
    build_volume_disk_xml,
    description_of_secret,
    disk_element_for_target,
    disk_targets,
    instance_key,
    secret_usages,
)
from kubenova.agents.images.fetcher import KernelBoot

UID = "0b7c3a52-4f0e-4d55-9a3e-1f6f2b1c9d10"
ISCSI = DiskAttachment(
    IscsiVolume(
        volume_id="vol-0123456789abcdef0123456789",
        host="10.0.0.5",
        port=3260,
        iqn="iqn.2010-10.io.kubenova:vol-1",
        lun=1,
        auth=IscsiAuth(username="tenant-a", secret_usage="kubenova-vol-1"),
    ),
    "vdb",
)


def an_instance(**changes: object) -> DomainSpec:
    fields: dict[str, object] = {
        "uid": UID,
        "namespace": "tenant-a",
        "name": "web-1",
        "vcpus": 2,
        "memory_mib": 512,
        "root_disk": RootDisk(Path("/cache/base.qcow2")),
        "nics": (Nic(bridge="br-net1", mac="52:54:00:aa:bb:cc", tap="tap-0b7c3a52"),),
    }
    fields.update(changes)
    return DomainSpec(**fields)  # type: ignore[arg-type]


FILES = DomainFiles(
    console_log=Path("/i/kubenova-x/console.log"),
    root_overlay=Path("/i/kubenova-x/disk.qcow2"),
    seed_image=Path("/i/kubenova-x/seed.iso"),
)


def domain_of(spec: DomainSpec, domain_type: DomainType = DomainType.QEMU) -> ET.Element:
    return ET.fromstring(build_domain_xml(spec, DomainSettings(domain_type=domain_type), FILES))


@pytest.mark.parametrize("domain_type", [DomainType.KVM, DomainType.QEMU])
def test_domain_type_is_the_setting(domain_type: DomainType) -> None:
    assert domain_of(an_instance(), domain_type).get("type") == domain_type.value


def test_identity_sizes_and_metadata() -> None:
    domain = domain_of(an_instance())
    assert domain.findtext("name") == f"kubenova-{UID}"
    assert domain.findtext("uuid") == UID
    assert domain.findtext("vcpu") == "2"
    memory = domain.find("memory")
    assert memory is not None
    assert (memory.get("unit"), memory.text) == ("MiB", "512")
    instance = domain.find(f"metadata/{{{METADATA_NS}}}instance")
    assert instance is not None
    assert instance.findtext(f"{{{METADATA_NS}}}namespace") == "tenant-a"
    assert instance.findtext(f"{{{METADATA_NS}}}name") == "web-1"
    assert domain.find("features/acpi") is not None


def test_root_disk_is_the_qcow2_overlay_on_vda_and_boots_from_disk() -> None:
    domain = domain_of(an_instance())
    (root,) = [d for d in domain.findall("devices/disk") if d.find("target").get("dev") == "vda"]  # type: ignore[union-attr]
    assert root.find("source").get("file") == "/i/kubenova-x/disk.qcow2"  # type: ignore[union-attr]
    assert root.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    assert root.find("target").get("bus") == "virtio"  # type: ignore[union-attr]
    assert domain.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]
    assert domain.find("os/kernel") is None


def test_kernel_boot_replaces_boot_from_disk() -> None:
    boot = KernelBoot(Path("/k/vmlinuz"), Path("/k/initrd.img"), "console=ttyS0")
    os_element = domain_of(an_instance(kernel_boot=boot)).find("os")
    assert os_element is not None
    assert os_element.findtext("kernel") == "/k/vmlinuz"
    assert os_element.findtext("initrd") == "/k/initrd.img"
    assert os_element.findtext("cmdline") == "console=ttyS0"
    assert os_element.find("boot") is None


def test_seed_is_a_read_only_disk() -> None:
    domain = domain_of(an_instance())
    (seed,) = [d for d in domain.findall("devices/disk") if d.findtext("serial") == "cidata"]
    assert seed.find("source").get("file") == "/i/kubenova-x/seed.iso"  # type: ignore[union-attr]
    assert seed.find("readonly") is not None


def test_nic_is_a_bridge_port_with_our_tap_name() -> None:
    (interface,) = domain_of(an_instance()).findall("devices/interface")
    assert interface.get("type") == "bridge"
    assert interface.find("source").get("bridge") == "br-net1"  # type: ignore[union-attr]
    assert interface.find("mac").get("address") == "52:54:00:aa:bb:cc"  # type: ignore[union-attr]
    assert interface.find("target").get("dev") == "tap-0b7c3a52"  # type: ignore[union-attr]
    assert interface.find("model").get("type") == "virtio"  # type: ignore[union-attr]


def test_serial_console_is_logged_to_a_file() -> None:
    serial = domain_of(an_instance()).find("devices/serial")
    assert serial is not None
    assert serial.get("type") == "file"
    assert serial.find("source").get("path") == "/i/kubenova-x/console.log"  # type: ignore[union-attr]


def test_iscsi_volume_is_a_network_disk_with_chap_secret() -> None:
    disk = ET.fromstring(build_volume_disk_xml(ISCSI))
    assert (disk.get("type"), disk.get("device")) == ("network", "disk")
    source = disk.find("source")
    assert source is not None
    assert (source.get("protocol"), source.get("name")) == (
        "iscsi",
        "iqn.2010-10.io.kubenova:vol-1/1",
    )
    host = source.find("host")
    assert host is not None
    assert (host.get("name"), host.get("port")) == ("10.0.0.5", "3260")
    auth = disk.find("auth")
    assert auth is not None
    assert auth.get("username") == "tenant-a"
    secret = auth.find("secret")
    assert secret is not None
    assert (secret.get("type"), secret.get("usage")) == ("iscsi", "kubenova-vol-1")
    # virtio-blk serials hold 20 bytes.
    assert disk.findtext("serial") == "vol-0123456789abcdef"


def test_file_volume_and_read_only_flag() -> None:
    attachment = DiskAttachment(FileVolume("v", Path("/v.img")), "vdc", read_only=True)
    disk = ET.fromstring(build_volume_disk_xml(attachment))
    assert disk.find("source").get("file") == "/v.img"  # type: ignore[union-attr]
    assert disk.find("driver").get("type") == "raw"  # type: ignore[union-attr]
    assert disk.find("readonly") is not None


def test_volumes_in_the_spec_are_in_the_domain_and_read_back_as_targets() -> None:
    xml = build_domain_xml(an_instance(volumes=(ISCSI,)), DomainSettings(DomainType.QEMU), FILES)
    assert disk_targets(xml) == ("vdb",)
    element = disk_element_for_target(xml, "vdb")
    assert element is not None
    assert "iqn.2010-10.io.kubenova:vol-1/1" in element
    assert disk_element_for_target(xml, "vdq") is None


def test_hostile_text_is_escaped_not_interpreted() -> None:
    spec = an_instance(name="x'/><evil/>", labels=(("k", "</metadata><devices/>"),))
    domain = domain_of(spec)
    assert domain.find("evil") is None
    assert len(domain.findall("devices")) == 1


def test_secret_xml() -> None:
    described = secret_description("ns-1", "data")
    xml = build_secret_xml("kubenova-vol-1", described)
    secret = ET.fromstring(xml)
    assert (secret.get("ephemeral"), secret.get("private")) == ("no", "yes")
    usage = secret.find("usage")
    assert usage is not None
    assert (usage.get("type"), usage.findtext("target")) == ("iscsi", "kubenova-vol-1")
    # The sweep reads the Volume back from the description.
    assert described_volume(description_of_secret(xml)) == ("ns-1", "data")
    assert described_volume("kubenova iSCSI CHAP secret kubenova-vol-1") is None
    assert described_volume(secret_description("ns", "a/../b")) is None


def test_secret_usages_of_a_domain_are_its_iscsi_disks_logins() -> None:
    root = domain_of(an_instance())
    devices = root.find("devices")
    assert devices is not None
    assert secret_usages(ET.tostring(root, encoding="unicode")) == set()
    devices.append(ET.fromstring(build_volume_disk_xml(ISCSI)))
    assert secret_usages(ET.tostring(root, encoding="unicode")) == {"kubenova-vol-1"}


def test_optional_settings_appear_only_when_set() -> None:
    plain = domain_of(an_instance())
    assert plain.find("cpu") is None
    assert "cache" not in plain.find("devices/disk/driver").attrib  # type: ignore[union-attr]
    tuned = ET.fromstring(
        build_domain_xml(
            an_instance(),
            DomainSettings(DomainType.KVM, cpu_mode="host-passthrough", disk_cache="none"),
            FILES,
        )
    )
    assert tuned.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]
    assert tuned.find("devices/disk/driver").get("cache") == "none"  # type: ignore[union-attr]


def test_a_domain_names_its_instance_for_the_orphan_sweep() -> None:
    xml = build_domain_xml(an_instance(), DomainSettings(domain_type=DomainType.QEMU), FILES)
    assert instance_key(xml) == "tenant-a/web-1"
    assert instance_key("<domain><name>kubenova-x</name></domain>") is None
