"""What a host offers: vCPUs and memory from libvirt's node info, disk from the state dir."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3


@dataclass(frozen=True)
class Capacity:
    """Physical capacity, before overcommit (the scheduler applies the Host's ratios)."""

    vcpus: int
    memory_mib: int
    disk_gib: int

    def as_status(self) -> dict[str, int]:
        """The wire form of `Host.status.capacity`."""
        return {"vcpus": self.vcpus, "memoryMiB": self.memory_mib, "diskGiB": self.disk_gib}


def disk_gib_of(path: Path) -> int:
    """Size in GiB of the filesystem holding `path` (the nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).total // GIB


def capacity_from_libvirt(uri: str, state_dir: Path) -> Capacity:
    """vCPUs and memory as libvirt reports the node; disk is the state dir's filesystem.

    libvirt's test driver reports its fixed fake node (16 CPUs, 3 GiB), which is what the
    fake driver's hosts should offer anyway.
    """
    # Imported here so that registration without libvirt (tests, volume-only hosts) works
    # on machines without libvirt-python.
    import libvirt  # noqa: PLC0415

    from kubenova.agents.compute.libvirt_events import translated_errors  # noqa: PLC0415

    with translated_errors(f"node info of {uri}"):
        connection: Any = libvirt.openReadOnly(uri)
        try:
            _model, memory_mib, cpus, *_rest = connection.getInfo()
        finally:
            connection.close()
    return Capacity(vcpus=int(cpus), memory_mib=int(memory_mib), disk_gib=disk_gib_of(state_dir))
