"""Backing files of volumes: one sparse raw file per volume under the host's storage dir.

Raw, because both tgt and vblade serve plain files; sparse, because a new volume costs
nothing until written. A volume made from an Image is the image converted to raw and then
grown to the volume's size. Files are written under a temporary name and renamed, so a
crash never leaves a half-filled file under a volume's name.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

from kubenova.agents.private_files import CHILD_UMASK, create_private, private_directory
from kubenova.errors import KubenovaError, UserError

GIB = 1 << 30
SUFFIX = ".raw"


class OutOfSpace(KubenovaError):
    """The storage dir's filesystem cannot hold the volume."""

    reason = "OutOfSpace"


class ImageTooLarge(UserError):
    """The Image does not fit into the volume."""

    reason = "ImageTooLarge"


class BackingFailure(KubenovaError):
    """Creating or filling the file failed for another reason (the message says which)."""

    reason = "BackingStoreFailed"


class BackingStore:
    """Volume files in `directory`, named after the volume uid."""

    def __init__(self, directory: Path, *, check_free_space: bool = True) -> None:
        self.directory = directory
        # Refuse a volume the filesystem could not hold if it were written full.
        self.check_free_space = check_free_space

    def path(self, volume_uid: str) -> Path:
        return self.directory / f"{volume_uid}{SUFFIX}"

    def exists(self, volume_uid: str) -> bool:
        return self.path(volume_uid).is_file()

    def size(self, volume_uid: str) -> int:
        return self.path(volume_uid).stat().st_size

    def create(self, volume_uid: str, size_bytes: int, source: Path | None = None) -> Path:
        """The volume's file of `size_bytes`: empty (sparse), or `source` converted to raw.

        Idempotent: an existing file is kept as is (never refilled).
        """
        path = self.path(volume_uid)
        if path.is_file():
            return path
        private_directory(self.directory)  # volumes hold tenant data: 0700, files 0600
        self._check_room(volume_uid, size_bytes)
        partial = path.with_suffix(".partial")
        try:
            partial.unlink(missing_ok=True)  # a leftover could have any mode; start afresh
            if source is None:
                with os.fdopen(create_private(partial), "wb") as handle:
                    handle.truncate(size_bytes)
            else:
                self._fill_from(source, partial, size_bytes)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise self._no_room(volume_uid, size_bytes) from exc
            raise BackingFailure(f"creating {path}: {exc}") from exc
        except KubenovaError:
            partial.unlink(missing_ok=True)
            raise
        return path

    def remove(self, volume_uid: str) -> bool:
        """Delete the volume's file (and a partial one); True if there was one."""
        self.path(volume_uid).with_suffix(".partial").unlink(missing_ok=True)
        try:
            self.path(volume_uid).unlink()
        except FileNotFoundError:
            return False
        return True

    def volume_uids(self) -> set[str]:
        """Uids of every volume file here (orphan sweeps)."""
        if not self.directory.is_dir():
            return set()
        return {p.name.removesuffix(SUFFIX) for p in self.directory.glob(f"*{SUFFIX}")}

    def _check_room(self, volume_uid: str, size_bytes: int) -> None:
        if not self.check_free_space:
            return
        stats = os.statvfs(self.directory)
        if stats.f_bavail * stats.f_frsize < size_bytes:
            raise self._no_room(volume_uid, size_bytes)

    def _no_room(self, volume_uid: str, size_bytes: int) -> OutOfSpace:
        stats = os.statvfs(self.directory)
        free = stats.f_bavail * stats.f_frsize
        return OutOfSpace(
            f"{self.directory} has {free / GIB:.1f} GiB free, volume {volume_uid} needs "
            f"{size_bytes / GIB:.1f} GiB: free space on the host, or delete the volume and "
            "create a smaller one"
        )

    def _fill_from(self, source: Path, partial: Path, size_bytes: int) -> None:
        virtual = _virtual_size(source)
        if virtual > size_bytes:
            raise ImageTooLarge(
                f"the image is {virtual / GIB:.1f} GiB, larger than the volume's "
                f"{size_bytes / GIB:.1f} GiB: create the volume with a larger sizeGiB"
            )
        _qemu_img("convert", "-O", "raw", str(source), str(partial))
        with partial.open("r+b") as handle:
            handle.truncate(size_bytes)


def _virtual_size(image: Path) -> int:
    info = json.loads(_qemu_img("info", "--output=json", str(image)))
    return int(info["virtual-size"])


def _qemu_img(*args: str) -> str:
    binary = shutil.which("qemu-img")
    if binary is None:
        raise BackingFailure("qemu-img not found: install qemu-utils (hack/apt-packages.txt)")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False, timeout=3600,
        umask=CHILD_UMASK,  # a converted volume is born 0600
    )  # fmt: skip
    if result.returncode != 0:
        message = result.stderr.strip()
        if "No space left" in message:
            raise OSError(errno.ENOSPC, message)
        raise BackingFailure(f"qemu-img {args[0]} failed: {message}")
    return result.stdout
