"""Pure builder of Xen domain XML for libvirt's libxl driver (`xen:///system`), PV or HVM.

The same Instance as on QEMU (domain_xml.py): the qcow2 overlay as the root disk (libxl's
qdisk backend, `driver name="qemu"`), the NoCloud seed as a read-only disk, volumes, bridged
NICs with their MACs, and the serial console. What differs is Xen's:
- PV: `<type machine="xenpv">linux</type>` with the kernel booted directly (PV has no
  firmware; the image's kernel+initrd, or pygrub reading the root disk), Xen's paravirtual
  disks (`bus="xen"`, xvda...) and console (`<console type="pty"><target type="xen">`,
  logged to the instance's console file).
- HVM: `<type machine="xenfv">hvm</type>` (hvmloader firmware, or direct kernel boot), the
  disks on the xen bus as well (PV drivers in the guest), an emulated serial port logged to
  a file as under QEMU.
Validated against libvirt's own schema in the tests (virt-xml-validate) and by golden
files; this machine cannot run Xen guests (README: what is tested and what is not).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from enum import StrEnum
from pathlib import Path

from kubenova.agents.compute.domain_xml import (
    MAX_DISK_SERIAL,
    ROOT_TARGET,
    SEED_TARGET,
    DomainFiles,
    _metadata,
)
from kubenova.agents.compute.spec import DomainSpec, FileVolume, IscsiVolume, Nic

XEN_URI = "xen:///system"
HVMLOADER = "/usr/lib/xen/boot/hvmloader"


class XenMode(StrEnum):
    """Paravirtualised (no emulation, a Xen-aware kernel) or hardware-virtualised."""

    PV = "pv"
    HVM = "hvm"


def xen_target(target_dev: str) -> str:
    """vda -> xvda: Xen's block devices are named xvd* in the guest."""
    return f"x{target_dev}"


def build_xen_domain_xml(spec: DomainSpec, mode: XenMode, files: DomainFiles) -> str:
    """The persistent libxl definition of an Instance."""
    domain = ET.Element("domain", type="xen")
    _text(domain, "name", spec.domain_name)
    _text(domain, "uuid", spec.domain_uuid)
    domain.append(_metadata(spec))
    _text(domain, "memory", str(spec.memory_mib), unit="MiB")
    _text(domain, "vcpu", str(spec.vcpus), placement="static")
    pygrub = mode is XenMode.PV and spec.kernel_boot is None
    if pygrub:
        # A PV guest without a kernel given: pygrub reads the image's own boot loader config.
        _text(domain, "bootloader", "/usr/lib/xen/bin/pygrub")
    domain.append(_os(spec, mode))
    if mode is XenMode.HVM:
        features = ET.SubElement(domain, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(features, "apic")
        ET.SubElement(features, "pae")
    ET.SubElement(domain, "clock", offset="utc")
    _text(domain, "on_poweroff", "destroy")
    _text(domain, "on_reboot", "restart")
    _text(domain, "on_crash", "destroy")

    devices = ET.SubElement(domain, "devices")
    if files.root_overlay is not None:
        devices.append(_file_disk(files.root_overlay, "qcow2", ROOT_TARGET, "root"))
    if files.seed_image is not None:
        seed = _file_disk(files.seed_image, "raw", SEED_TARGET, "cidata")
        ET.SubElement(seed, "readonly")
        devices.append(seed)
    for attachment in spec.volumes:
        volume = attachment.volume
        if isinstance(volume, FileVolume):
            disk = _file_disk(
                volume.path, volume.format.value, attachment.target_dev, volume.volume_id
            )
        else:
            disk = _iscsi_disk(volume, attachment.target_dev)
        if attachment.read_only:
            ET.SubElement(disk, "readonly")
        devices.append(disk)
    for nic in spec.nics:
        devices.append(_interface(nic, mode))
    if mode is XenMode.PV:
        # PV has no emulated UART: Xen's console ring, logged where the agent reads consoles.
        console = ET.SubElement(devices, "console", type="pty")
        ET.SubElement(console, "log", file=str(files.console_log), append="on")
        ET.SubElement(console, "target", type="xen", port="0")
    else:
        serial = ET.SubElement(devices, "serial", type="file")
        ET.SubElement(serial, "source", path=str(files.console_log), append="on")
        ET.SubElement(serial, "target", port="0")
        console = ET.SubElement(devices, "console", type="file")
        ET.SubElement(console, "source", path=str(files.console_log), append="on")
        ET.SubElement(console, "target", type="serial", port="0")
    ET.SubElement(devices, "memballoon", model="xen")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def _os(spec: DomainSpec, mode: XenMode) -> ET.Element:
    os_element = ET.Element("os")
    if mode is XenMode.PV:
        _text(os_element, "type", "linux", arch="x86_64", machine="xenpv")
    else:
        _text(os_element, "type", "hvm", arch="x86_64", machine="xenfv")
        if spec.kernel_boot is None:
            _text(os_element, "loader", HVMLOADER)
            ET.SubElement(os_element, "boot", dev="hd")
    boot = spec.kernel_boot
    if boot is not None:
        _text(os_element, "kernel", str(boot.kernel))
        if boot.initrd is not None:
            _text(os_element, "initrd", str(boot.initrd))
        # The console is hvc0 under PV, ttyS0 (the emulated UART) under HVM.
        cmdline = boot.cmdline
        if mode is XenMode.PV:
            cmdline = cmdline.replace("console=ttyS0", "console=hvc0")
        if cmdline:
            _text(os_element, "cmdline", cmdline)
    return os_element


def _file_disk(path: Path, fmt: str, target_dev: str, serial: str) -> ET.Element:
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    ET.SubElement(disk, "source", file=str(path))
    ET.SubElement(disk, "target", dev=xen_target(target_dev), bus="xen")
    _text(disk, "serial", serial[:MAX_DISK_SERIAL])
    return disk


def _iscsi_disk(volume: IscsiVolume, target_dev: str) -> ET.Element:
    disk = ET.Element("disk", type="network", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw")
    source = ET.SubElement(disk, "source", protocol="iscsi", name=f"{volume.iqn}/{volume.lun}")
    ET.SubElement(source, "host", name=volume.host, port=str(volume.port))
    if volume.auth is not None:
        auth = ET.SubElement(disk, "auth", username=volume.auth.username)
        ET.SubElement(auth, "secret", type="iscsi", usage=volume.auth.secret_usage)
    ET.SubElement(disk, "target", dev=xen_target(target_dev), bus="xen")
    _text(disk, "serial", volume.volume_id[:MAX_DISK_SERIAL])
    return disk


def _interface(nic: Nic, mode: XenMode) -> ET.Element:
    interface = ET.Element("interface", type="bridge")
    ET.SubElement(interface, "source", bridge=nic.bridge)
    ET.SubElement(interface, "mac", address=nic.mac)
    ET.SubElement(interface, "target", dev=nic.tap)
    if mode is XenMode.HVM:
        # Emulated e1000 for firmware and installers; Linux switches to netfront itself.
        ET.SubElement(interface, "model", type="e1000")
    return interface


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element
