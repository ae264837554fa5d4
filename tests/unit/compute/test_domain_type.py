"""Domain type resolution without a hypervisor: fixed settings, fallback, probe XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kubenova.agents.compute.domain_type import PROBE_NAME_PREFIX, probe_xml, resolve_domain_type
from kubenova.agents.compute.domain_xml import DomainType
from kubenova.agents.images.fetcher import KernelBoot


@pytest.mark.parametrize("setting", ["kvm", "qemu"])
def test_a_fixed_setting_is_taken_as_is(setting: str, tmp_path: Path) -> None:
    # No connection is opened: the URI is never used.
    assert resolve_domain_type(setting, "qemu:///nowhere", tmp_path) is DomainType(setting)


def test_auto_without_probe_kernel_uses_the_fallback(tmp_path: Path) -> None:
    chosen = resolve_domain_type("auto", "qemu:///nowhere", tmp_path, fallback=DomainType.KVM)
    assert chosen is DomainType.KVM


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kvm, qemu or auto"):
        resolve_domain_type("xen", "qemu:///nowhere", tmp_path)


def test_probe_domain_boots_the_kernel_and_is_no_instance() -> None:
    boot = KernelBoot(Path("/k/vmlinuz"), Path("/k/initrd"), "console=ttyS0")
    domain = ET.fromstring(
        probe_xml("probe-kubenova-kvm-1", DomainType.KVM, boot, Path("/tmp/serial.log"))
    )
    assert domain.get("type") == "kvm"
    assert domain.findtext("os/kernel") == "/k/vmlinuz"
    assert domain.findtext("os/cmdline") == "console=ttyS0"
    assert domain.find("devices/serial/source").get("path") == "/tmp/serial.log"  # type: ignore[union-attr]
    assert not PROBE_NAME_PREFIX.startswith("kubenova-")
