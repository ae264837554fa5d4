"""An instance's files on this host: one directory per domain with overlay, seed, console log."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kubenova.agents.compute.cloud_init_seed import write_seed_iso
from kubenova.agents.compute.domain_xml import DomainFiles
from kubenova.agents.compute.driver import ComputeFailure
from kubenova.agents.compute.spec import DomainSpec, RootDisk, domain_name_for
from kubenova.agents.private_files import CHILD_UMASK, private_directory


class InstanceFiles:
    """Lays out `<instances_dir>/kubenova-<uid>/{disk.qcow2,seed.iso,console.log}`.

    The guest's disk, seed (user-data) and console are tenant data: the directory is 0700
    and the files 0600 (private_files.py)."""

    def __init__(self, instances_dir: Path) -> None:
        self.instances_dir = instances_dir

    def directory(self, uid: str) -> Path:
        return self.instances_dir / domain_name_for(uid)

    def overlay(self, uid: str) -> Path:
        return self.directory(uid) / "disk.qcow2"

    def seed(self, uid: str) -> Path:
        return self.directory(uid) / "seed.iso"

    def console_log(self, uid: str) -> Path:
        return self.directory(uid) / "console.log"

    def prepare(self, spec: DomainSpec) -> DomainFiles:
        """Create what is missing; an existing overlay holds the guest's data and is kept."""
        private_directory(self.directory(spec.uid))
        overlay = None
        if spec.root_disk is not None:
            overlay = self.overlay(spec.uid)
            if not overlay.exists():
                create_overlay(spec.root_disk, overlay)
        seed = None
        if spec.seed is not None:
            seed = self.seed(spec.uid)
            if not seed.exists():
                write_seed_iso(spec.seed, seed)
        return DomainFiles(
            console_log=self.console_log(spec.uid), root_overlay=overlay, seed_image=seed
        )

    def remove(self, uid: str) -> None:
        """Remove the instance's directory and all in it."""
        shutil.rmtree(self.directory(uid), ignore_errors=True)


def create_overlay(root_disk: RootDisk, overlay: Path) -> None:
    """`qemu-img create -b base -F fmt -f qcow2 overlay [size]`, written atomically."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise ComputeFailure("qemu-img not found: install qemu-utils (hack/apt-packages.txt)")
    if not root_disk.base_image.is_file():
        raise ComputeFailure(f"base image {root_disk.base_image} is not on this host")
    partial = overlay.with_name(f".{overlay.name}.partial")
    # qemu-img would keep the mode of a file it overwrites: start from none.
    partial.unlink(missing_ok=True)
    argv = [
        qemu_img,
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        str(root_disk.base_image.resolve()),
        "-F",
        root_disk.base_format.value,
        str(partial),
    ]
    if root_disk.size_gib is not None:
        argv.append(f"{root_disk.size_gib}G")
    result = subprocess.run(argv, capture_output=True, text=True, check=False, umask=CHILD_UMASK)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ComputeFailure(f"qemu-img create failed: {result.stderr.strip()}")
    partial.replace(overlay)
