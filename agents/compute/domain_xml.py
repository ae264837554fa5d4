"""Pure builders of libvirt XML (domains, disks, secrets) with ElementTree, never by formatting."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kubenova.agents.compute.spec import (
    RESERVED_TARGETS,
    DiskAttachment,
    DomainSpec,
    FileVolume,
    IscsiVolume,
    Nic,
)

METADATA_NS = "https://kubenova.io/xmlns/instance/v1"
ET.register_namespace("kubenova", METADATA_NS)
ROOT_TARGET, SEED_TARGET = RESERVED_TARGETS
# virtio-blk serial numbers hold at most 20 bytes (VIRTIO_BLK_ID_BYTES).
MAX_DISK_SERIAL = 20


class DomainType(StrEnum):
    """libvirt's <domain type>: KVM on real hosts, QEMU (TCG emulation) where KVM cannot run."""

    KVM = "kvm"
    QEMU = "qemu"
    # libvirt's libxl driver: domains built by xen_xml.py, never by build_domain_xml.
    XEN = "xen"


@dataclass(frozen=True)
class DomainSettings:
    """Host-wide choices that are not part of an Instance."""

    domain_type: DomainType
    machine: str = "pc"
    arch: str = "x86_64"
    # e.g. "host-passthrough" on KVM hosts; None lets libvirt choose (what TCG wants).
    cpu_mode: str | None = None
    # e.g. "none" for O_DIRECT on real disks; None keeps QEMU's default (works on tmpfs).
    disk_cache: str | None = None


@dataclass(frozen=True)
class DomainFiles:
    """Where this host keeps the instance's files (decided by the driver, not the spec)."""

    console_log: Path
    root_overlay: Path | None = None
    seed_image: Path | None = None


def build_domain_xml(spec: DomainSpec, settings: DomainSettings, files: DomainFiles) -> str:
    """The full persistent domain definition of an instance."""
    domain = ET.Element("domain", type=settings.domain_type.value)
    _text(domain, "name", spec.domain_name)
    _text(domain, "uuid", spec.domain_uuid)
    domain.append(_metadata(spec))
    _text(domain, "memory", str(spec.memory_mib), unit="MiB")
    _text(domain, "vcpu", str(spec.vcpus), placement="static")
    domain.append(_os(spec, settings))
    features = ET.SubElement(domain, "features")
    # ACPI carries graceful shutdown and PCI hot-plug of volumes.
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if settings.cpu_mode is not None:
        ET.SubElement(domain, "cpu", mode=settings.cpu_mode)
    ET.SubElement(domain, "clock", offset="utc")
    _text(domain, "on_poweroff", "destroy")
    _text(domain, "on_reboot", "restart")
    _text(domain, "on_crash", "destroy")

    devices = ET.SubElement(domain, "devices")
    if files.root_overlay is not None:
        devices.append(
            _file_disk(files.root_overlay, "qcow2", ROOT_TARGET, settings.disk_cache, serial="root")
        )
    if files.seed_image is not None:
        seed = _file_disk(files.seed_image, "raw", SEED_TARGET, None, serial="cidata")
        ET.SubElement(seed, "readonly")
        devices.append(seed)
    for attachment in spec.volumes:
        devices.append(volume_disk_element(attachment, settings.disk_cache))
    for nic in spec.nics:
        devices.append(_interface(nic))
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(files.console_log), append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=str(files.console_log), append="on")
    ET.SubElement(console, "target", type="serial", port="0")
    # No balloon: memory is what the flavor says, and one device fewer to emulate.
    ET.SubElement(devices, "memballoon", model="none")
    return _serialise(domain)


def build_volume_disk_xml(attachment: DiskAttachment, disk_cache: str | None = None) -> str:
    """The <disk> element for hot-plugging one volume."""
    return _serialise(volume_disk_element(attachment, disk_cache))


def volume_disk_element(attachment: DiskAttachment, disk_cache: str | None) -> ET.Element:
    """A volume as a virtio <disk>: a network (iSCSI) disk or a file disk."""
    volume = attachment.volume
    if isinstance(volume, FileVolume):
        disk = _file_disk(
            volume.path,
            volume.format.value,
            attachment.target_dev,
            disk_cache,
            serial=volume.volume_id,
        )
    else:
        disk = _iscsi_disk(volume, attachment.target_dev, disk_cache)
    if attachment.read_only:
        ET.SubElement(disk, "readonly")
    return disk


def build_secret_xml(usage: str, description: str) -> str:
    """A persistent, private libvirt secret for an iSCSI CHAP password of `usage`."""
    secret = ET.Element("secret", ephemeral="no", private="yes")
    _text(secret, "description", description)
    usage_element = ET.SubElement(secret, "usage", type="iscsi")
    _text(usage_element, "target", usage)
    return _serialise(secret)


def description_of_secret(secret_xml: str) -> str:
    """The description of a libvirt secret's XML ("" if it has none)."""
    return ET.fromstring(secret_xml).findtext("description") or ""


def secret_usages(domain_xml: str) -> set[str]:
    """The iSCSI secret usages the disks of a domain's XML log in with."""
    root = ET.fromstring(domain_xml)
    found = set()
    for disk in root.iterfind("devices/disk"):
        for secret in disk.iterfind(".//auth/secret"):
            if secret.get("type") == "iscsi" and secret.get("usage"):
                found.add(str(secret.get("usage")))
    return found


def disk_targets(domain_xml: str) -> tuple[str, ...]:
    """Target devices of the volumes in a domain's XML (root disk and seed left out)."""
    root = ET.fromstring(domain_xml)
    targets = []
    for target in root.findall("./devices/disk/target"):
        dev = target.get("dev", "")
        if dev not in (ROOT_TARGET, SEED_TARGET):
            targets.append(dev)
    return tuple(targets)


def instance_key(domain_xml: str) -> str | None:
    """`namespace/name` of the Instance a domain was defined for (its kubenova metadata)."""
    root = ET.fromstring(domain_xml)
    ns = {"kn": METADATA_NS}
    namespace = root.findtext("./metadata/kn:instance/kn:namespace", namespaces=ns)
    name = root.findtext("./metadata/kn:instance/kn:name", namespaces=ns)
    return f"{namespace}/{name}" if namespace and name else None


def disk_element_for_target(domain_xml: str, target_dev: str) -> str | None:
    """The <disk> element on `target_dev` as libvirt wrote it (what a detach must name)."""
    root = ET.fromstring(domain_xml)
    for disk in root.findall("./devices/disk"):
        target = disk.find("target")
        if target is not None and target.get("dev") == target_dev:
            return _serialise(disk)
    return None


def _metadata(spec: DomainSpec) -> ET.Element:
    metadata = ET.Element("metadata")
    instance = ET.SubElement(metadata, f"{{{METADATA_NS}}}instance")
    for key, value in (("uid", spec.uid), ("namespace", spec.namespace), ("name", spec.name)):
        _text(instance, f"{{{METADATA_NS}}}{key}", value)
    for key, value in spec.labels:
        _text(instance, f"{{{METADATA_NS}}}label", value, key=key)
    return metadata


def _os(spec: DomainSpec, settings: DomainSettings) -> ET.Element:
    os_element = ET.Element("os")
    _text(os_element, "type", "hvm", arch=settings.arch, machine=settings.machine)
    boot = spec.kernel_boot
    if boot is not None:
        _text(os_element, "kernel", str(boot.kernel))
        if boot.initrd is not None:
            _text(os_element, "initrd", str(boot.initrd))
        if boot.cmdline:
            _text(os_element, "cmdline", boot.cmdline)
    else:
        ET.SubElement(os_element, "boot", dev="hd")
    return os_element


def _file_disk(
    path: Path, fmt: str, target_dev: str, cache: str | None, *, serial: str
) -> ET.Element:
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", _driver_attributes(fmt, cache))
    ET.SubElement(disk, "source", file=str(path))
    ET.SubElement(disk, "target", dev=target_dev, bus="virtio")
    _text(disk, "serial", serial[:MAX_DISK_SERIAL])
    return disk


def _iscsi_disk(volume: IscsiVolume, target_dev: str, cache: str | None) -> ET.Element:
    disk = ET.Element("disk", type="network", device="disk")
    ET.SubElement(disk, "driver", _driver_attributes("raw", cache))
    source = ET.SubElement(disk, "source", protocol="iscsi", name=f"{volume.iqn}/{volume.lun}")
    ET.SubElement(source, "host", name=volume.host, port=str(volume.port))
    if volume.initiator is not None:
        initiator = ET.SubElement(source, "initiator")
        ET.SubElement(initiator, "iqn", name=volume.initiator)
    if volume.auth is not None:
        auth = ET.SubElement(disk, "auth", username=volume.auth.username)
        ET.SubElement(auth, "secret", type="iscsi", usage=volume.auth.secret_usage)
    ET.SubElement(disk, "target", dev=target_dev, bus="virtio")
    _text(disk, "serial", volume.volume_id[:MAX_DISK_SERIAL])
    return disk


def _driver_attributes(fmt: str, cache: str | None) -> dict[str, str]:
    attributes = {"name": "qemu", "type": fmt}
    if cache is not None:
        attributes["cache"] = cache
    return attributes


def _interface(nic: Nic) -> ET.Element:
    interface = ET.Element("interface", type="bridge")
    ET.SubElement(interface, "source", bridge=nic.bridge)
    ET.SubElement(interface, "mac", address=nic.mac)
    ET.SubElement(interface, "target", dev=nic.tap)
    ET.SubElement(interface, "model", type=nic.model)
    return interface


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _serialise(element: ET.Element) -> str:
    ET.indent(element)
    return ET.tostring(element, encoding="unicode")
