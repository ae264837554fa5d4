"""A qcow2 overlay on a cached base image: what an instance's root disk is made of."""

from __future__ import annotations

from pathlib import Path

from kubenova.agents.compute.instance_files import create_overlay
from kubenova.agents.compute.spec import DiskFormat, RootDisk
from kubenova.agents.private_files import private_directory


def overlay(base: Path, dest: Path, size_gib: int | None = None) -> Path:
    """`qemu-img create -f qcow2 -b base -F <fmt> dest [size]G`; the base's format from its suffix.

    Raises ComputeFailure (kubenova.agents.compute) if qemu-img is missing or refuses.
    """
    # The compute service already makes overlays; one implementation for both.
    base_format = DiskFormat.RAW if base.suffix == ".raw" else DiskFormat.QCOW2
    private_directory(dest.parent)  # the overlay will hold the guest's writes
    create_overlay(RootDisk(base, base_format, size_gib), dest)
    return dest
