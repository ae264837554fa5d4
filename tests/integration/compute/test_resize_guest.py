"""A real TCG guest resized on its own host: shut off, its domain redefined with more vCPUs
and memory and its overlay grown, started again; the guest's own kernel sees the new size."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import replace

import libvirt
import pytest

from kubenova.agents.compute import ComputeFailure, DomainState
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver
from tests.fixtures.test_image import GuestImage
from tests.integration.compute.test_libvirt_guest import (
    a_guest,
    console,
    driver,
    wait_for_console,
)

pytestmark = pytest.mark.libvirt

__all__ = ["driver"]  # the fixture, shared with the guest tests

SECTORS_PER_GIB = 2 * 1024 * 1024


def kernel_saw(text: str) -> list[tuple[int, int]]:
    """(CPUs, total memory KiB) per boot on the console, as the guest's kernel reports them."""
    cpus = [int(n) for n in re.findall(r"smp: Brought up \d+ nodes?, (\d+) CPUs?", text)]
    memory = [int(n) for n in re.findall(r"Memory: \d+K/(\d+)K available", text)]
    return list(zip(cpus, memory, strict=False))


def test_a_stopped_guest_grows_and_its_kernel_sees_it(
    driver: LibvirtDriver, test_image: GuestImage
) -> None:
    boot = test_image.kernel_boot()
    # Not quiet: the kernel prints how many CPUs it brought up and how much memory it has.
    spec = a_guest(test_image, kernel_boot=replace(boot, cmdline=f"{boot.cmdline} ignore_loglevel"))
    driver.spawn(spec)
    wait_for_console(driver, spec.uid, test_image.ready_marker)
    with pytest.raises(ComputeFailure, match="resized only while shut off"):
        driver.resize(spec.uid, 2, 192, 1)
    driver.power_off(spec.uid, timeout=0)

    started = time.monotonic()
    driver.resize(spec.uid, 2, 192, 1)
    driver.resize(spec.uid, 2, 192, 1)  # again: nothing to do
    resize_seconds = time.monotonic() - started
    assert driver.get_info(spec.uid).state is DomainState.SHUTOFF
    domain = driver.libvirt_domain(spec.uid)
    root = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert root.findtext("vcpu") == "2"
    assert int(root.findtext("memory") or 0) == 192 * 1024  # libvirt shows KiB
    assert int(root.findtext("currentMemory") or 0) == 192 * 1024

    driver.power_on(spec.uid)
    wait_for_console(driver, spec.uid, test_image.ready_marker, count=2)
    info = driver.get_info(spec.uid)
    assert (info.vcpus, info.memory_mib) == (2, 192)
    text = console(driver, spec.uid)
    (cpus_before, memory_before), (cpus_after, memory_after) = kernel_saw(text)
    assert (cpus_before, cpus_after) == (1, 2), text
    assert memory_after - memory_before >= 90 * 1024, (memory_before, memory_after)
    sectors = re.findall(r"KUBENOVA-BLOCK vda sectors=(\d+)", text)
    assert int(sectors[-1]) == SECTORS_PER_GIB, sectors
    assert int(sectors[0]) < SECTORS_PER_GIB
    print(f"\nresize of the shut-off domain (define + qemu-img resize): {resize_seconds:.2f} s")
