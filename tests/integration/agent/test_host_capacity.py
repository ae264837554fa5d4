"""A host's capacity as the real libvirtd reports it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.host import capacity_from_libvirt

pytestmark = pytest.mark.libvirt


def numa_memory_mib() -> int:
    """What the kernel's NUMA nodes hold: libvirt's source, as in Nova.

    It can be less than /proc/meminfo's MemTotal (on this VM it is about half).
    """
    total_kib = 0
    for meminfo in Path("/sys/devices/system/node").glob("node*/meminfo"):
        for line in meminfo.read_text().splitlines():
            if "MemTotal:" in line:
                total_kib += int(line.split()[-2])
    assert total_kib, "no NUMA node reports MemTotal"
    return total_kib // 1024


def test_capacity_comes_from_libvirts_node_info(libvirtd: Any, tmp_path: Path) -> None:
    capacity = capacity_from_libvirt(libvirtd.uri, tmp_path / "state")

    assert capacity.vcpus == os.cpu_count()
    # In MiB (not KiB nor bytes), within 1% of what the kernel's NUMA nodes report.
    assert abs(capacity.memory_mib - numa_memory_mib()) <= numa_memory_mib() // 100
    assert capacity.disk_gib >= 1
