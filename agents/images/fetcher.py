"""The image step of the compute service: one call, `await fetch(name, image)`.

On real hosts this is the image service (`kubenova.agents.images.ImageService`: download
from the S3 object store into the host cache, sha256 verified). The fake driver never reads
a disk, so `PlaceholderImages` gives it an empty file per image instead of a download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubenova.agents.compute.spec import KernelBoot
from kubenova.api.v1alpha1 import Image


class FetchedImage(Protocol):
    """An Image's files on this host."""

    @property
    def disk(self) -> Path:
        """The base disk the instance's overlay is made on."""
        ...

    @property
    def kernel_boot(self) -> KernelBoot | None:
        """Kernel, initrd and command line when the Image boots a kernel directly."""
        ...


class ImageFetcher(Protocol):
    """Makes an Image available on this host (downloading and verifying it if needed)."""

    async def fetch(self, name: str, image: Image) -> FetchedImage:
        """The local files of Image `name`; raises kubenova errors saying what is wrong."""
        ...


@dataclass(frozen=True)
class Placeholder:
    disk: Path
    kernel_boot: KernelBoot | None = None


class PlaceholderImages:
    """An empty file per image, for the fake driver (it never reads the base image)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def fetch(self, name: str, image: Image) -> Placeholder:
        path = self.directory / f"{image.spec.sha256}.{image.spec.format}"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            path.touch()
        kernel_boot = None
        if image.spec.boot is not None:
            kernel_boot = KernelBoot(kernel=path, cmdline=image.spec.boot.cmdline)
        return Placeholder(disk=path, kernel_boot=kernel_boot)
