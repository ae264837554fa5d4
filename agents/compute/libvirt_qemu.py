"""The real compute driver: libvirt + QEMU (KVM, or TCG where KVM cannot run guests)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from kubenova.agents.compute.domain_type import KernelProbe, resolve_domain_type
from kubenova.agents.compute.domain_xml import (
    DomainFiles,
    DomainSettings,
    DomainType,
    build_secret_xml,
    build_volume_disk_xml,
    description_of_secret,
    disk_element_for_target,
    disk_targets,
)
from kubenova.agents.compute.driver import ComputeFailure
from kubenova.agents.compute.instance_files import InstanceFiles
from kubenova.agents.compute.libvirt_domains import LibvirtBackedDriver
from kubenova.agents.compute.libvirt_events import translated_errors
from kubenova.agents.compute.resize import grow_overlay
from kubenova.agents.compute.spec import DiskAttachment, DomainSpec

DETACH_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class LibvirtSettings:
    """How this host runs guests; `domain_type` is kvm, qemu (TCG) or auto (see domain_type.py)."""

    uri: str = "qemu:///system"
    instances_dir: Path = Path("/var/lib/kubenova/instances")
    domain_type: str = "auto"
    # What `auto` boots under KVM to prove it works, and what it uses without a probe.
    kvm_probe: KernelProbe | None = None
    auto_fallback: DomainType = DomainType.QEMU
    machine: str = "pc"
    cpu_mode: str | None = None
    disk_cache: str | None = None
    # Seconds an ACPI shutdown may take before the domain is forced off.
    shutdown_timeout: float = 60.0


class LibvirtDriver(LibvirtBackedDriver):
    """Domains on a QEMU libvirtd, with qcow2 overlays and NoCloud seeds under instances_dir."""

    def __init__(self, settings: LibvirtSettings) -> None:
        domain_type = resolve_domain_type(
            settings.domain_type,
            settings.uri,
            settings.instances_dir,
            settings.kvm_probe,
            settings.auto_fallback,
        )
        super().__init__(
            settings.uri,
            DomainSettings(
                domain_type=domain_type,
                machine=settings.machine,
                cpu_mode=settings.cpu_mode,
                disk_cache=settings.disk_cache,
            ),
            shutdown_timeout=settings.shutdown_timeout,
        )
        self.files = InstanceFiles(settings.instances_dir)

    def _prepare_files(self, spec: DomainSpec) -> DomainFiles:
        return self.files.prepare(spec)

    def _remove_files(self, uid: str) -> None:
        self.files.remove(uid)

    def _grow_root_disk(self, uid: str, size_gib: int) -> None:
        if self.files.overlay(uid).is_file():  # a kernel-booted guest may have none
            grow_overlay(self.files.overlay(uid), size_gib)

    def _domain_xml_for_disks(self, domain: Any) -> str:
        # The live definition when running (what the guest has), else the persistent one.
        xml: str = domain.XMLDesc(0)
        return xml

    def console_log(self, uid: str) -> Path | None:
        """The serial console log under the instance's directory (None if it has none)."""
        return self.files.console_log(uid) if self.files.directory(uid).is_dir() else None

    def attach_volume(self, uid: str, attachment: DiskAttachment) -> None:
        """Hot-plug into the running guest and into the persistent definition."""
        domain = self._require(uid)
        live, persistent = self._disk_views(domain)
        target = attachment.target_dev
        xml = build_volume_disk_xml(attachment, self.settings.disk_cache)
        with translated_errors(f"attach {target} to {domain.name()}"):
            if target not in persistent:
                domain.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            if live is not None and target not in live:
                domain.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def detach_volume(self, uid: str, target_dev: str, *, timeout: float = 30.0) -> None:
        """Unplug from the persistent definition and the guest; wait for the guest's release."""
        domain = self._require(uid)
        with translated_errors(f"detach {target_dev} from {domain.name()}"):
            persistent_disk = disk_element_for_target(
                domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), target_dev
            )
            if persistent_disk is not None:
                domain.detachDeviceFlags(persistent_disk, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            if not domain.isActive():
                return
            live_disk = disk_element_for_target(domain.XMLDesc(0), target_dev)
            if live_disk is None:
                return
        deadline = time.monotonic() + timeout
        next_request = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_request:
                # Returns once QEMU asked the guest (ACPI eject). A guest still booting loses
                # the request, so it is repeated until the device is gone.
                self._request_live_detach(domain, live_disk)
                next_request = time.monotonic() + DETACH_RETRY_SECONDS
            with translated_errors(f"state of {domain.name()}"):
                if not domain.isActive() or target_dev not in disk_targets(domain.XMLDesc(0)):
                    return
            time.sleep(0.1)
        raise ComputeFailure(
            f"guest of {domain.name()} did not release {target_dev} within {timeout:.0f} s"
        )

    def _request_live_detach(self, domain: Any, disk_xml: str) -> None:
        try:
            domain.detachDeviceFlags(disk_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as error:
            code = error.get_error_code()
            # "already in the process of unplug" or "no such disk" (released meanwhile)
            # just mean: keep watching.
            if code in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_CONNECT):
                with translated_errors(f"detach from {domain.name()}"):
                    raise

    def define_secret(self, usage: str, value: bytes, description: str) -> None:
        """Create the iSCSI secret of `usage` if needed and set its value."""
        with translated_errors(f"secret {usage}"):
            secret = self._secret(usage)
            if secret is None:
                xml = build_secret_xml(usage, description)
                secret = self._connection.secretDefineXML(xml, 0)
            secret.setValue(value, 0)
        self._note_secret(usage)

    def undefine_secret(self, usage: str) -> None:
        """Remove the secret of `usage`; absent is fine."""
        with translated_errors(f"secret {usage}"):
            secret = self._secret(usage)
            if secret is not None:
                secret.undefine()
        self._secrets_defined.pop(usage, None)

    def list_secrets(self, prefix: str) -> dict[str, str]:
        """usage -> description of this libvirtd's iSCSI secrets whose usage has `prefix`."""
        found = {}
        with translated_errors("list secrets"):
            secrets = self._connection.listAllSecrets(0)
        for secret in secrets:
            try:
                if secret.usageType() != libvirt.VIR_SECRET_USAGE_TYPE_ISCSI:
                    continue
                usage = str(secret.usageID())
                if usage.startswith(prefix):
                    found[usage] = description_of_secret(secret.XMLDesc(0))
            except libvirt.libvirtError:
                continue  # undefined while we listed
        return found

    def _secret(self, usage: str) -> Any | None:
        try:
            return self._connection.secretLookupByUsage(libvirt.VIR_SECRET_USAGE_TYPE_ISCSI, usage)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_SECRET:
                return None
            raise

    def _disk_views(self, domain: Any) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        with translated_errors(f"disks of {domain.name()}"):
            persistent = disk_targets(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            live = disk_targets(domain.XMLDesc(0)) if domain.isActive() else None
        return live, persistent
