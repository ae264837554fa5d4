"""Resizing a guest on its host: the domain's vCPUs and memory redefined, its overlay grown.

The operator claims the new size first and then writes it in `status.resources` (the
agent never resizes to what nobody claimed). A guest is resized only while its domain is
shut off: a stopped Instance at once, a running one with spec.resizePolicy: Restart after
a shutdown (the power convergence then starts it again), a running one without it at its
next stop. The root disk only grows (admission refuses shrinking): `qemu-img resize` of the
overlay; the guest's partition is grown by cloud-init's growpart at the next boot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from kubenova.agents.compute.driver import ComputeDriver, ComputeFailure, DomainState, InstanceInfo
from kubenova.agents.compute.references import Sizing
from kubenova.api.v1alpha1 import ResizePolicy
from kubenova.kube.meta import Body, uid_of

log = logging.getLogger(__name__)

GIB = 1024**3


def claimed_sizing(body: Body) -> Sizing | None:
    """The size the operator claimed for the guest (`status.resources`), or None."""
    shown = (body.get("status") or {}).get("resources")
    if not shown:
        return None
    return Sizing(shown["vcpus"], shown["memoryMiB"], shown["diskGiB"])


def resized_xml(xml: str, vcpus: int, memory_mib: int) -> str:
    """The inactive domain XML with `vcpus` and `memory_mib` (memory and currentMemory)."""
    root = ET.fromstring(xml)
    for tag in ("memory", "currentMemory"):
        element = root.find(tag)
        if element is not None:
            element.text, element.attrib["unit"] = str(memory_mib), "MiB"
    vcpu = root.find("vcpu")
    if vcpu is None:
        raise ComputeFailure("the domain XML has no <vcpu> element to resize")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)  # every vCPU online: the flavor's number
    return ET.tostring(root, encoding="unicode")


def grow_overlay(overlay: Path, size_gib: int) -> bool:
    """Grow the qcow2 overlay to `size_gib` if it is smaller; True if it grew."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise ComputeFailure("qemu-img not found: install qemu-utils (hack/apt-packages.txt)")
    info = subprocess.run(
        [qemu_img, "info", "--output=json", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if info.returncode != 0:
        raise ComputeFailure(f"qemu-img info {overlay} failed: {info.stderr.strip()}")
    if int(json.loads(info.stdout)["virtual-size"]) >= size_gib * GIB:
        return False
    grown = subprocess.run(
        [qemu_img, "resize", "-q", str(overlay), f"{size_gib}G"],
        capture_output=True,
        text=True,
        check=False,
    )
    if grown.returncode != 0:
        raise ComputeFailure(f"qemu-img resize {overlay} failed: {grown.stderr.strip()}")
    return True


@dataclass
class GuestResizer:
    """Brings a guest's domain to the size in its status, when the domain is shut off."""

    driver: ComputeDriver

    def __post_init__(self) -> None:
        # uid -> the size last applied or verified: a guest of that size costs no work.
        self._sized: dict[str, Sizing] = {}

    def forget(self, uid: str) -> None:
        self._sized.pop(uid, None)

    async def __call__(self, key: str, body: Body, info: InstanceInfo) -> InstanceInfo:
        """Resize the domain if its status asks for another size; the domain's info now."""
        uid = uid_of(body)
        target = claimed_sizing(body)
        if target is None or self._sized.get(uid) == target:
            return info
        if info.state != DomainState.SHUTOFF:
            policy = (body.get("spec") or {}).get("resizePolicy", ResizePolicy.WHEN_STOPPED)
            if (info.vcpus, info.memory_mib) == (target.vcpus, target.memory_mib):
                return info  # the disk is checked at the next stop (qemu-img is costly)
            if policy != ResizePolicy.RESTART:
                return info  # resized at its next stop
            log.info("instance %s: shutting down to resize it (resizePolicy Restart)", key)
            await asyncio.to_thread(self.driver.power_off, uid)
        await asyncio.to_thread(
            self.driver.resize, uid, target.vcpus, target.memory_mib, target.disk_gib
        )
        self._sized[uid] = target
        log.info(
            "instance %s: resized to %d vCPUs, %d MiB, %d GiB",
            key,
            target.vcpus,
            target.memory_mib,
            target.disk_gib,
        )
        return await asyncio.to_thread(self.driver.get_info, uid)
