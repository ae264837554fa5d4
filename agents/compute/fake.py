"""The fake compute driver: the same contract on libvirt's test driver, for scale and unit tests.

Each driver gets its own `test:///<state_dir>/node.xml` (an empty <node>), so its domains are
private to it (`test:///default` is shared by the whole process). No QEMU runs and no disk is
written: the overlay and seed are empty placeholder files, so callers still see files appear
and go. The test driver cannot hot-plug devices or store secrets; volumes are added to the
persistent definition instead, and secrets are kept in memory. Each definition is also
saved in its directory, so a driver started again on the same directory (an agent
restart) finds the domains of the last one running, as with a real libvirtd.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt

from kubenova.agents.compute.domain_xml import (
    DomainFiles,
    DomainSettings,
    DomainType,
    disk_targets,
    volume_disk_element,
)
from kubenova.agents.compute.driver import InstanceInfo
from kubenova.agents.compute.libvirt_domains import LibvirtBackedDriver
from kubenova.agents.compute.libvirt_events import translated_errors
from kubenova.agents.compute.spec import DiskAttachment, DomainSpec, domain_name_for

SAVED_DOMAIN = "domain.xml"  # a domain's definition, kept in its directory


class FakeComputeDriver(LibvirtBackedDriver):
    """Domains in a private libvirt test driver; files are placeholders under `state_dir`."""

    def __init__(self, state_dir: Path, *, shutdown_timeout: float = 1.0) -> None:
        self.state_dir = state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        node = self.state_dir / "node.xml"
        # The domains of an earlier run come back, as a real libvirtd keeps its domains (and
        # their QEMUs) across an agent restart: what the agent finds at start is real.
        saved = sorted(self.state_dir.glob(f"*/{SAVED_DOMAIN}"))
        node.write_text("<node>\n" + "".join(f.read_text() for f in saved) + "</node>\n")
        self.secrets: dict[str, tuple[bytes, str]] = {}  # usage -> (value, description)
        super().__init__(
            f"test://{node}",
            DomainSettings(domain_type=DomainType.QEMU),
            shutdown_timeout=shutdown_timeout,
        )

    def spawn(self, spec: DomainSpec) -> InstanceInfo:
        info = super().spawn(spec)
        self._save(spec.uid)
        return info

    def _save(self, uid: str) -> None:
        """Keep the definition beside the domain's files, for the next driver on this dir."""
        domain = self._lookup(uid)
        if domain is not None and self.directory(uid).is_dir():
            xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            (self.directory(uid) / SAVED_DOMAIN).write_text(xml)

    def directory(self, uid: str) -> Path:
        return self.state_dir / domain_name_for(uid)

    def overlay(self, uid: str) -> Path:
        """The placeholder standing for the instance's qcow2 overlay."""
        return self.directory(uid) / "disk.qcow2"

    def _prepare_files(self, spec: DomainSpec) -> DomainFiles:
        directory = self.directory(spec.uid)
        directory.mkdir(exist_ok=True)
        overlay = seed = None
        if spec.root_disk is not None:
            overlay = self.overlay(spec.uid)
            overlay.touch()
        if spec.seed is not None:
            seed = directory / "seed.iso"
            seed.touch()
        return DomainFiles(
            console_log=directory / "console.log", root_overlay=overlay, seed_image=seed
        )

    def _remove_files(self, uid: str) -> None:
        shutil.rmtree(self.directory(uid), ignore_errors=True)

    def _grow_root_disk(self, uid: str, size_gib: int) -> None:
        """The overlay is a placeholder: nothing to grow."""

    def resize(self, uid: str, vcpus: int, memory_mib: int, disk_gib: int) -> None:
        super().resize(uid, vcpus, memory_mib, disk_gib)
        self._save(uid)

    def _domain_xml_for_disks(self, domain: Any) -> str:
        # Volumes live in the persistent definition (the test driver cannot hot-plug).
        xml: str = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        return xml

    def console_log(self, uid: str) -> Path | None:
        """No guest runs, so there is no console."""
        return None

    def attach_volume(self, uid: str, attachment: DiskAttachment) -> None:
        """Add the disk to the persistent definition (idempotent)."""
        domain = self._require(uid)
        with translated_errors(f"attach {attachment.target_dev} to {domain.name()}"):
            root = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if attachment.target_dev in disk_targets(ET.tostring(root, encoding="unicode")):
                return
            devices = root.find("devices")
            if devices is None:
                devices = ET.SubElement(root, "devices")
            devices.append(volume_disk_element(attachment, None))
            self._connection.defineXML(ET.tostring(root, encoding="unicode"))
        self._save(uid)

    def detach_volume(self, uid: str, target_dev: str, *, timeout: float = 30.0) -> None:
        """Remove the disk from the persistent definition (absent is fine)."""
        domain = self._require(uid)
        with translated_errors(f"detach {target_dev} from {domain.name()}"):
            root = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            devices = root.find("devices")
            if devices is None:
                return
            for disk in devices.findall("disk"):
                target = disk.find("target")
                if target is not None and target.get("dev") == target_dev:
                    devices.remove(disk)
                    self._connection.defineXML(ET.tostring(root, encoding="unicode"))
                    self._save(uid)
                    return

    def define_secret(self, usage: str, value: bytes, description: str) -> None:
        """Remember the secret (the test driver has no secret store); as libvirt's, an
        existing one keeps its description."""
        _, kept = self.secrets.get(usage, (b"", description))
        self.secrets[usage] = (value, kept)
        self._note_secret(usage)

    def undefine_secret(self, usage: str) -> None:
        """Forget the secret; absent is fine."""
        self.secrets.pop(usage, None)
        self._secrets_defined.pop(usage, None)

    def list_secrets(self, prefix: str) -> dict[str, str]:
        return {u: d for u, (_, d) in self.secrets.items() if u.startswith(prefix)}
