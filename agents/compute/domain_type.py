"""Choose the domain type: `kvm` or `qemu` as configured, or `auto` = prove KVM by booting.

/dev/kvm existing proves nothing: on some hosts (a paravirtual KVM without VMX) a KVM guest
runs real-mode and early kernel code, then dies with "emulation failure" on an instruction
such as `lock cmpxchg16b` in the booted kernel. A tiny boot-sector probe passes there, so
`auto` boots a whole Linux kernel (the probe: kernel, initrd and the marker its /init prints
on ttyS0) under KVM and uses KVM only if the marker arrives; without a probe kernel it takes
the configured fallback.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import libvirt

from kubenova.agents.compute.domain_xml import DomainType
from kubenova.agents.compute.libvirt_events import translated_errors
from kubenova.agents.images.fetcher import KernelBoot

# Not "kubenova-...": a probe must never look like an instance to list_instances().
PROBE_NAME_PREFIX = "probe-kubenova-"
AUTO = "auto"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelProbe:
    """A kernel whose init prints `marker` on the serial console once the system runs."""

    boot: KernelBoot
    marker: bytes
    timeout: float = 60.0


def probe_xml(name: str, domain_type: DomainType, boot: KernelBoot, serial_log: Path) -> str:
    """A transient diskless 128 MiB domain booting `boot` with its serial console in a file."""
    domain = ET.Element("domain", type=domain_type.value)
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = "128"
    ET.SubElement(domain, "vcpu").text = "1"
    os_element = ET.SubElement(domain, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_element, "kernel").text = str(boot.kernel)
    if boot.initrd is not None:
        ET.SubElement(os_element, "initrd").text = str(boot.initrd)
    ET.SubElement(os_element, "cmdline").text = boot.cmdline
    devices = ET.SubElement(domain, "devices")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(serial_log))
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def boots_with(
    connection: libvirt.virConnect, domain_type: DomainType, probe: KernelProbe, scratch: Path
) -> bool:
    """True if the probe kernel reaches its marker in a transient domain of `domain_type`."""
    name = f"{PROBE_NAME_PREFIX}{domain_type.value}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".probe-") as work:
        serial_log = Path(work) / "serial.log"
        try:
            domain = connection.createXML(probe_xml(name, domain_type, probe.boot, serial_log), 0)
        except libvirt.libvirtError as error:
            log.info("%s guests cannot start: %s", domain_type.value, error.get_error_message())
            return False
        try:
            deadline = time.monotonic() + probe.timeout
            while time.monotonic() < deadline:
                if serial_log.exists() and probe.marker in serial_log.read_bytes():
                    return True
                state, _reason = domain.state()
                # An emulation failure pauses the guest (or it dies): no point waiting.
                if state != libvirt.VIR_DOMAIN_RUNNING:
                    return False
                time.sleep(0.05)
            return False
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                domain.destroy()


def resolve_domain_type(
    setting: str,
    uri: str,
    scratch: Path,
    probe: KernelProbe | None = None,
    fallback: DomainType = DomainType.QEMU,
) -> DomainType:
    """`kvm`/`qemu` as given; `auto` proves KVM with the probe kernel, else uses `fallback`."""
    if setting in (DomainType.KVM.value, DomainType.QEMU.value):
        return DomainType(setting)
    if setting != AUTO:
        raise ValueError(f"domain type {setting!r} must be kvm, qemu or auto")
    if probe is None:
        log.warning("domain type auto without a probe kernel: using %s", fallback.value)
        return fallback
    with translated_errors(f"connect to {uri}"):
        connection = libvirt.open(uri)
    try:
        kvm_runs = boots_with(connection, DomainType.KVM, probe, scratch)
    finally:
        connection.close()
    log.info("KVM %s the probe kernel", "boots" if kvm_runs else "does not boot")
    return DomainType.KVM if kvm_runs else DomainType.QEMU
