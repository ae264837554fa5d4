"""The Xen compute driver: libvirt's libxl driver (`xen:///system`) on a Xen dom0.

Everything but the domain XML is the libvirt driver's (files, volumes, power, events); the
XML is xen_xml.py's, PV or HVM. `check_xen_host` runs first, so an agent started with
`--hypervisor xen` on a host without Xen stops at once saying what is missing, instead of
failing on the first guest. This machine has no Xen: the XML is validated against libvirt's
schema in the tests, the driver itself has never run a guest (README).
"""

from __future__ import annotations

from pathlib import Path

import libvirt

from kubenova.agents.compute.domain_xml import DomainFiles, DomainSettings, DomainType
from kubenova.agents.compute.driver import ComputeFailure
from kubenova.agents.compute.instance_files import InstanceFiles
from kubenova.agents.compute.libvirt_domains import LibvirtBackedDriver
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.spec import DomainSpec
from kubenova.agents.compute.xen_xml import XEN_URI, XenMode, build_xen_domain_xml

PROC_XEN = Path("/proc/xen")


def check_xen_host(uri: str = XEN_URI, proc_xen: Path = PROC_XEN) -> None:
    """Raise ComputeFailure saying what is missing unless this host is a Xen dom0 whose
    libvirtd answers on `uri`."""
    capabilities = proc_xen / "capabilities"
    try:
        dom0 = "control_d" in capabilities.read_text()
    except OSError:
        raise ComputeFailure(
            f"--hypervisor xen: this host does not run on Xen ({capabilities} is missing): "
            "boot it as a Xen dom0 (Debian: xen-system-amd64) or start the agent with "
            "--hypervisor qemu"
        ) from None
    if not dom0:
        raise ComputeFailure(
            "--hypervisor xen: this host is a Xen guest (domU), not dom0: run the agent in "
            "dom0, where libvirt's libxl driver can create domains"
        )
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError as error:
        raise ComputeFailure(
            f"--hypervisor xen: cannot reach libvirt's Xen driver at {uri} "
            f"({error.get_error_message()}): install libvirt-daemon-driver-xen and start "
            "libvirtd"
        ) from None


class XenDriver(LibvirtDriver):
    """Instances as Xen domains (PV or HVM) through libvirt's libxl driver."""

    def __init__(self, settings: LibvirtSettings, mode: XenMode = XenMode.HVM) -> None:
        check_xen_host(settings.uri)
        self.mode = mode
        # No KVM probe: the hypervisor is Xen itself.
        LibvirtBackedDriver.__init__(
            self,
            settings.uri,
            DomainSettings(domain_type=DomainType.XEN, machine="xenfv"),
            shutdown_timeout=settings.shutdown_timeout,
        )
        self.files = InstanceFiles(settings.instances_dir)

    def _build_xml(self, spec: DomainSpec, files: DomainFiles) -> str:
        return build_xen_domain_xml(spec, self.mode, files)
