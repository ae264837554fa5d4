"""Cold migration, the agent's half: the target host takes a stopped guest's files (its qcow2
overlay, which holds everything the guest wrote, and its NoCloud seed) from the source
host's libvirtd, then has the source forget the guest.

Everything goes through libvirt's storage API over the peer URI that live migration already
uses (the source's Host `status.migration.libvirtURI`): the source's instance directory is
opened as a transient `dir` pool there and each file is read with virStorageVolDownload,
so the target needs no shell, ssh or shared filesystem on the source. A file lands under a
hidden partial name and is renamed when complete (an interrupted pull leaves nothing the
domain would boot from). The overlay's backing file is then pointed at the target's own
copy of the base image (`qemu-img rebase -u`: the same image, fetched by this host).
Only once the target holds both files is the source's domain undefined and its directory
deleted (`forget_on_source`), so at every moment one complete copy exists. A resize's move
then grows the overlay to the new flavor's disk (`pull_from_source(..., grow_to=)`).
`cold_moves.py` runs these for an InstanceMigration of mode Cold.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt

from kubenova.agents.compute.driver import ComputeFailure
from kubenova.agents.compute.instance_files import InstanceFiles
from kubenova.agents.compute.resize import grow_overlay
from kubenova.agents.compute.spec import RootDisk, domain_name_for
from kubenova.agents.private_files import private_directory

OVERLAY, SEED = "disk.qcow2", "seed.iso"


@contextlib.contextmanager
def _source_pool(peer: Any, directory: Path, uid: str, *, persistent: bool) -> Iterator[Any]:
    """The source's instance directory as a storage pool on its libvirtd."""
    name = f"kubenova-cold-{uid}"
    xml = f"<pool type='dir'><name>{name}</name><target><path>{directory}</path></target></pool>"
    with contextlib.suppress(libvirt.libvirtError):  # left by an interrupted attempt
        stale = peer.storagePoolLookupByName(name)
        if stale.isActive():
            stale.destroy()
        if stale.isPersistent():
            stale.undefine()
    if persistent:  # a persistent pool can delete its directory once stopped
        pool = peer.storagePoolDefineXML(xml, 0)
        pool.create(0)
    else:
        pool = peer.storagePoolCreateXML(xml, 0)
    try:
        yield pool
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            if pool.isActive():
                pool.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            if pool.isPersistent():
                pool.undefine()


def _download(peer: Any, volume: Any, dest: Path) -> None:
    partial = dest.with_name(f".{dest.name}.partial")
    stream = peer.newStream(0)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        volume.download(stream, 0, 0, 0)

        def write(_stream: Any, data: bytes, _fd: int) -> int:
            return os.write(_fd, data)

        stream.recvAll(write, fd)
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    partial.replace(dest)


def pull_from_source(
    peer_uri: str,
    source_instances_dir: Path,
    uid: str,
    files: InstanceFiles,
    root_disk: RootDisk,
    *,
    grow_to: int | None = None,
) -> None:
    """Copy the stopped guest's overlay and seed from the source's libvirtd into `files`
    (the overlay then grown to `grow_to` GiB if smaller).

    Idempotent: a file already here complete is kept. Raises ComputeFailure when the
    source has no overlay for the guest or libvirt refuses.
    """
    local_dir = private_directory(files.directory(uid))
    source_dir = source_instances_dir / domain_name_for(uid)
    try:
        peer = libvirt.open(peer_uri)
    except libvirt.libvirtError as error:
        raise ComputeFailure(f"cannot reach the source's libvirtd {peer_uri}: {error}") from error
    try:
        with _source_pool(peer, source_dir, uid, persistent=False) as pool:
            names = set(pool.listVolumes())
            if OVERLAY not in names and not files.overlay(uid).exists():
                raise ComputeFailure(f"the source has no overlay for {uid} in {source_dir}")
            for name in (OVERLAY, SEED):
                dest = local_dir / name
                if name in names and not dest.exists():
                    _download(peer, pool.storageVolLookupByName(name), dest)
    except libvirt.libvirtError as error:
        raise ComputeFailure(f"pulling {uid}'s files from {peer_uri} failed: {error}") from error
    finally:
        peer.close()
    _rebase(files.overlay(uid), root_disk)
    if grow_to is not None:
        grow_overlay(files.overlay(uid), grow_to)


def runs_on_source(peer_uri: str, uid: str) -> bool:
    """Whether the guest's domain runs on the source (a pull waits until it is shut off)."""
    try:
        peer = libvirt.open(peer_uri)
    except libvirt.libvirtError as error:
        raise ComputeFailure(f"cannot reach the source's libvirtd {peer_uri}: {error}") from error
    try:
        return bool(peer.lookupByName(domain_name_for(uid)).isActive())
    except libvirt.libvirtError:
        return False  # not defined there (forgotten already): nothing runs
    finally:
        peer.close()


def _rebase(overlay: Path, root_disk: RootDisk) -> None:
    """Point the overlay at this host's copy of its base image (same content: unsafe mode)."""
    result = subprocess.run(
        [
            "qemu-img",
            "rebase",
            "-u",
            "-f",
            "qcow2",
            "-b",
            str(root_disk.base_image.resolve()),
            "-F",
            root_disk.base_format.value,
            str(overlay),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ComputeFailure(f"qemu-img rebase {overlay} failed: {result.stderr.strip()}")


def forget_on_source(peer_uri: str, source_instances_dir: Path, uid: str) -> None:
    """Undefine the guest's (shut-off) domain on the source and delete its directory there.

    Call only once this host holds the guest's files. Idempotent: what is gone is skipped.
    Refuses (ComputeFailure) while the source's domain runs: two copies must never run.
    """
    source_dir = source_instances_dir / domain_name_for(uid)
    try:
        peer = libvirt.open(peer_uri)
    except libvirt.libvirtError as error:
        raise ComputeFailure(f"cannot reach the source's libvirtd {peer_uri}: {error}") from error
    try:
        try:
            domain = peer.lookupByName(domain_name_for(uid))
        except libvirt.libvirtError:
            domain = None
        if domain is not None:
            if domain.isActive():
                raise ComputeFailure(f"the guest {uid} runs on the source: not taken from it")
            domain.undefine()
        try:
            with _source_pool(peer, source_dir, uid, persistent=True) as pool:
                for volume in pool.listAllVolumes(0):
                    volume.delete(0)
                pool.destroy()
                pool.delete(0)  # the now empty directory
        except libvirt.libvirtError as error:
            if source_dir.name not in str(error):
                raise
    except libvirt.libvirtError as error:
        raise ComputeFailure(f"forgetting {uid} on {peer_uri} failed: {error}") from error
    finally:
        peer.close()
